"""Phrasebooks: every phrase the tool says exists in each language, and stays in it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from coachtrack.errors import UserError
from coachtrack.loader import load_routine
from coachtrack.phrases import ENGLISH, GERMAN, PHRASEBOOKS, phrasebook, sentence
from coachtrack.profiles import PROFILES
from coachtrack.script import make_script

ROOT = Path(__file__).parents[1]


def english_phrases() -> set[str]:
    """Every English phrase of the tool, with its placeholders cut off."""
    out: set[str] = set()
    for f in fields(ENGLISH):
        value = getattr(ENGLISH, f.name)
        if isinstance(value, bool):
            continue
        for text in value if isinstance(value, tuple) else (value,):
            if f.name != "language" and text.split("{")[0].strip(" .:"):
                out.add(text.split("{")[0].strip())
    return out


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_german_track_says_nothing_in_english(profile: str) -> None:
    routine = load_routine(ROOT / "routines" / "hamstring-cramps-de.yaml")
    script = make_script(routine, PROFILES[profile], phrasebook(routine.language))
    english = english_phrases()
    for text in script.texts():
        assert not any(text.startswith(p) for p in english if len(p) > 3), text
    assert {"Drei", "Zwei", "Eins"} <= set(script.texts()) or profile != "gym"


def test_every_phrasebook_has_every_phrase_with_the_same_placeholders() -> None:
    for book in PHRASEBOOKS.values():
        for f in fields(book):
            ours, theirs = getattr(book, f.name), getattr(ENGLISH, f.name)
            if isinstance(ours, tuple):
                assert len(ours) >= min(5, len(theirs)), (book.language, f.name)
            elif f.name != "language" and isinstance(ours, str):
                assert sorted(_placeholders(ours)) == sorted(_placeholders(theirs)), f.name
    assert GERMAN.count(3) == "Drei" and GERMAN.join(("a", "b", "c")) == "a, b und c"


def _placeholders(text: str) -> list[str]:
    return [part.split("}")[0] for part in text.split("{")[1:]]


def test_an_unknown_language_is_a_usage_error() -> None:
    with pytest.raises(UserError, match="no phrasebook for language 'fr'"):
        phrasebook("fr")


LABELS = {"hamstring-cramps": ("Source: ", "Safety: "),
          "hamstring-cramps-de": ("Quelle: ", "Sicherheit: ")}  # fmt: skip


@pytest.mark.parametrize(("name", "labels"), LABELS.items())
def test_the_tags_comment_is_in_the_routines_language(name: str, labels: tuple[str, str]) -> None:
    from coachtrack import build
    from coachtrack.sounds import sound_set
    from coachtrack.timeline import build_timeline

    routine = load_routine(ROOT / "routines" / f"{name}.yaml")
    track = build.routine_track(routine, PROFILES["phone"], build.BuildOptions())
    script = make_script(routine, track.profile, phrasebook(routine.language))
    sounds = sound_set(track.profile.chimes, 22050)
    lengths = {text: 22050 for text in script.texts()}
    timeline = build_timeline(script, lengths, {k: len(v) for k, v in sounds.items()}, 22050)
    info = build.track_info(build.Planned(track, script, timeline, {}, sounds))
    assert info.comment.startswith(labels[0]) and labels[1] in info.comment, info.comment
    assert routine.safety and info.comment.endswith(routine.safety)


def test_a_session_ends_as_a_session() -> None:
    from coachtrack.script import Line, make_session_script

    routine = load_routine(ROOT / "routines" / "night-cramp-relief.yaml")
    for book in PHRASEBOOKS.values():
        two = make_session_script("s", "S", (routine, routine), PROFILES["gym"], book)
        one = make_session_script("s", "S", (routine,), PROFILES["gym"], book)
        assert [i.text for i in two.items if isinstance(i, Line)][-1] == book.session_finish
        assert [i.text for i in one.items if isinstance(i, Line)][-1] == book.finish


def test_a_filled_in_text_keeps_its_own_stop_and_gets_no_second() -> None:
    # "{title}." always added a stop: "Ready to stretch?." and "Step 2: Hold it..".
    assert sentence(ENGLISH.welcome, title="Ready to stretch?") == "Ready to stretch?"
    assert sentence(ENGLISH.step, n=2, title="Hold it.") == "Step 2: Hold it."
    assert sentence(ENGLISH.step, n=3, title="Reach up!") == "Step 3: Reach up!"
    assert sentence(ENGLISH.step, n=4, title="Calf stretch...") == "Step 4: Calf stretch..."
    assert sentence(ENGLISH.step, n=5, title="Lunge: ") == "Step 5: Lunge."
    assert sentence(ENGLISH.step, n=6, title="Lunge") == "Step 6: Lunge."
    assert (
        sentence(GERMAN.session, n=1, title="Waden – ca. 5 Min.") == "Routine 1: Waden – ca. 5 Min."
    )
    assert sentence(ENGLISH.safety_note, safety="Go gently") == "A word of care. Go gently"


def test_a_side_of_several_words_or_a_noun_is_said_as_written() -> None:
    # "left side" gave "Start with the left side side."; "linkes Bein", "Wir beginnen
    # linkes Bein."
    assert ENGLISH.side("right", first=True) == "Start with the right side."
    assert ENGLISH.side("left", first=False) == "Now the left side."
    assert ENGLISH.side("Left", first=True) == "Start with the Left side."
    assert ENGLISH.side("left side", first=True) == "Start with the left side."
    assert ENGLISH.side("right leg", first=False) == "Now the right leg."
    assert GERMAN.side("rechts", first=True) == "Wir beginnen rechts."
    assert GERMAN.side("links", first=False) == "Jetzt links."
    assert GERMAN.side("linkes Bein", first=True) == "Zuerst: linkes Bein."
    assert GERMAN.side("Oberkörper", first=False) == "Jetzt: Oberkörper."
