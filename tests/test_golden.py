"""Golden text dumps of the shipped routines' timelines: a timing change shows as a diff.

Clip lengths come from a fixed model of speech (not the engine), so the dumps
stay the same on any machine. Refresh with `pytest --update-golden`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from coachtrack import SAMPLE_RATE
from coachtrack.loader import load_routines
from coachtrack.phrases import phrasebook
from coachtrack.profiles import PROFILES
from coachtrack.script import make_script
from coachtrack.sounds import sound_set
from coachtrack.timeline import build_timeline, plan_text

ROOT = Path(__file__).parents[1]
GOLDEN = Path(__file__).parent / "golden"
ROUTINES = {r.id: r for r in load_routines([ROOT / "routines"])}


def modelled_length(text: str, rate_wpm: int) -> int:
    """About how long a line takes to say: words at the profile's rate, plus a breath."""
    words = len(text.split())
    return round((0.25 + words * 60 / rate_wpm) * SAMPLE_RATE)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("routine_id", sorted(ROUTINES))
def test_timeline_matches_golden_dump(
    routine_id: str, profile: str, request: pytest.FixtureRequest
) -> None:
    routine, chosen = ROUTINES[routine_id], PROFILES[profile]
    script = make_script(routine, chosen, phrasebook(routine.language))
    lengths = {t: modelled_length(t, chosen.rate_wpm) for t in script.texts()}
    sounds = {k: len(v) for k, v in sound_set(chosen.chimes, SAMPLE_RATE).items()}
    text = plan_text(build_timeline(script, lengths, sounds, SAMPLE_RATE))
    path = GOLDEN / f"{routine_id}.{profile}.txt"
    if request.config.getoption("--update-golden"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), "no golden dump yet: run pytest --update-golden"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("routine_id", sorted(ROUTINES))
def test_no_shipped_hold_leaves_a_listener_in_silence_for_long(
    routine_id: str, profile: str
) -> None:
    # A minute of digital silence mid-hold reads as a stalled player (phone hamstring-cramps
    # had 67 s in its standing calf stretch): some cue, reminder or count comes within 50 s.
    routine, chosen = ROUTINES[routine_id], PROFILES[profile]
    script = make_script(routine, chosen, phrasebook(routine.language))
    lengths = {t: modelled_length(t, chosen.rate_wpm) for t in script.texts()}
    sounds = {k: len(v) for k, v in sound_set(chosen.chimes, SAMPLE_RATE).items()}
    timeline = build_timeline(script, lengths, sounds, SAMPLE_RATE)
    for hold in (e for e in timeline.events if e.kind == "hold"):
        said = ("cue", "countdown")
        inside = sorted(e.start for e in timeline.events
                        if e.kind in said and hold.start < e.start < hold.end)  # fmt: skip
        marks = [hold.start, *inside, hold.end]
        longest = max(b - a for a, b in itertools.pairwise(marks))
        assert longest <= 50 * SAMPLE_RATE, (hold, longest / SAMPLE_RATE)
