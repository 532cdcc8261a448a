"""Timing invariants of DESIGN.md, on the pure planner (no audio)."""

from __future__ import annotations

import dataclasses
import itertools
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coachtrack import SAMPLE_RATE
from coachtrack.model import Action, DurationRange, Hold, Repeat, Routine, Say, Step
from coachtrack.phrases import ENGLISH
from coachtrack.profiles import BEDSIDE, GYM, PHONE, PROFILES, Profile
from coachtrack.script import HoldItem, make_script, make_session_script, short_title
from coachtrack.sounds import sound_set
from coachtrack.timeline import Timeline, build_timeline, cue_sheet, format_length

from .strategies import routines

RATE = SAMPLE_RATE


def ms(value: float) -> int:
    return round(value * RATE / 1000)


def fake_lengths(texts: tuple[str, ...], salt: int) -> dict[str, int]:
    """Clip lengths that vary with the text, like real speech (0.3 s to ~4 s)."""
    return {t: ms(300 + (zlib.crc32(t.encode()) + salt) % 700 + 60 * len(t)) for t in texts}


def plan(routine: Routine, profile: Profile, salt: int = 0) -> Timeline:
    script = make_script(routine, profile, ENGLISH)
    sounds = {k: len(v) for k, v in sound_set(profile.chimes, RATE).items()}
    return build_timeline(script, fake_lengths(script.texts(), salt), sounds, RATE)


BREATHS = {*ENGLISH.breathe_intensify, *ENGLISH.breathe_calm}


def holds_of(routine: Routine, profile: Profile) -> list[HoldItem]:
    return [i for i in make_script(routine, profile, ENGLISH).items if isinstance(i, HoldItem)]


def check_invariants(routine: Routine, profile: Profile, tl: Timeline) -> None:
    events = tl.events
    assert [e.start for e in events] == sorted(e.start for e in events)
    holds = [e for e in events if e.kind == "hold"]
    planned = holds_of(routine, profile)
    assert len(holds) == len(planned)
    chimes = {(e.sound, e.start) for e in events if e.kind == "chime"}
    for hold, item in zip(holds, planned, strict=True):
        # 1. exact length, from the onset of the start chime to the onset of the end chime
        assert hold.end - hold.start == ms(item.length_ms)
        assert ("hold-start", hold.start) in chimes and ("hold-end", hold.end) in chimes
        assert abs((tl.to_ms(hold.end) - tl.to_ms(hold.start)) - item.length_ms) <= 1
        speech_before = [e for e in events if e.kind == "speech" and e.start < hold.start]
        if speech_before:
            assert hold.start - max(e.end for e in speech_before) >= ms(300)
        ticks = [e for e in events if e.kind == "countdown" and hold.start <= e.start < hold.end]
        cues = [e for e in events if e.kind == "cue" and hold.start <= e.start < hold.end]
        if item.length_ms < 10_000:  # holds under 10 s get no countdown
            assert not ticks
        if item.countdown:
            assert [hold.end - t.start for t in ticks] == [ms(3000), ms(2000), ms(1000)]
            assert all(t.end <= hold.end for t in ticks)
        else:
            assert not ticks
        # 2. cues wholly inside the hold, 3 s after its start, before the countdown
        limit = hold.end - (ms(3000) if item.countdown else 0)
        for cue in cues:
            assert cue.start >= hold.start + ms(3000)
            assert cue.end <= limit
        # a breathing cue keeps a third of a breath period of quiet from any other cue
        room = ms(profile.breath_period_ms) // 3
        for a, b in itertools.pairwise(cues):
            if a.text in BREATHS or b.text in BREATHS:
                assert b.start - a.end >= room, (a, b)
    # every cue belongs to a hold
    for cue in (e for e in events if e.kind == "cue"):
        assert any(h.start <= cue.start and cue.end <= h.end for h in holds)
    # 3. speech never overlaps speech (cues and spoken counts are speech too)
    voiced = sorted((e for e in events if e.text is not None), key=lambda e: e.start)
    for a, b in itertools.pairwise(voiced):
        assert a.end <= b.start, (a, b)
    # 6. chapters: one per step and side, in order, contiguous from 0 to the end
    expected = [
        (s.title.replace("{side}", side) if "{side}" in s.title else f"{s.title} ({side})")
        if side
        else s.title
        for s in routine.steps
        for side in (s.sides or (None,))
    ]
    assert [c.title for c in tl.chapters] == expected
    assert tl.chapters[0].start == 0 and tl.chapters[-1].end == tl.duration
    for a, b in zip(tl.chapters, tl.chapters[1:], strict=False):
        assert a.end == b.start and a.start < b.start
    assert all(e.end <= tl.duration for e in events)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routine=routines(), name=st.sampled_from(sorted(PROFILES)), salt=st.integers(0, 999))
def test_timing_invariants_hold_for_any_routine(routine: Routine, name: str, salt: int) -> None:
    profile = PROFILES[name]
    check_invariants(routine, profile, plan(routine, profile, salt))


def stretch(length: str = "2m..2m30s", **hold: object) -> Routine:
    lo, _, hi = length.partition("..")
    to_ms = {"2m": 120_000, "2m30s": 150_000, "30s": 30_000, "5s": 5_000}
    rng = DurationRange(to_ms[lo], to_ms[hi or lo])
    return Routine(
        id="t",
        title="Test",
        steps=(Step("Stretch", (Say(("Get ready.",)), Hold(rng, **hold)), ("right", "left")),),  # type: ignore[arg-type]
    )


def test_profile_picks_length_from_range() -> None:
    assert holds_of(stretch(), PHONE)[0].length_ms == 135_000
    assert holds_of(stretch(), BEDSIDE)[0].length_ms == 135_000
    assert holds_of(stretch(), GYM)[0].length_ms == 120_000
    # The middle is the middle, not a whole second near it.
    for lo, hi, middle in (
        (30_000, 45_000, 37_500),
        (10_000, 11_000, 10_500),
        (11_000, 12_000, 11_500),
    ):
        assert DurationRange(lo, hi).pick_ms("middle") == middle


def test_side_in_a_step_title_becomes_the_side_name() -> None:
    step = Step("Stretch the {side} leg", (Say(("Lift the {side} heel.",)),), ("right", "left"))
    tl = plan(Routine(id="t", title="Test", steps=(step,)), PHONE)
    assert [c.title for c in tl.chapters] == ["Stretch the right leg", "Stretch the left leg"]
    said = [e.text for e in tl.events if e.kind == "speech"]
    assert "Step 1: Stretch the right leg." in said and not [t for t in said if "{" in (t or "")]


def test_each_routine_of_a_session_starts_with_the_start_chime() -> None:
    from coachtrack.script import make_session_script

    script = make_session_script("s", "A + B", (stretch("30s"), stretch("30s")), GYM, ENGLISH)
    sounds = {k: len(v) for k, v in sound_set(GYM.chimes, RATE).items()}
    tl = build_timeline(script, fake_lengths(script.texts(), 0), sounds, RATE)
    starts = [e for e in tl.events if e.kind == "chime" and e.sound == "start"]
    second = next(e for e in tl.events if e.text == "Routine 2: Test.")
    assert len(starts) == 2 and starts[0].start == 0
    before = max(e.end for e in tl.events if e.text is not None and e.end <= starts[1].start)
    assert starts[1].start - before >= ms(300) and starts[1].end <= second.start
    assert any(c.start <= starts[1].start < c.end and c.start > 0 for c in tl.chapters)
    # Each chapter says which routine it is of; both are "Test" here, so their numbers too.
    assert [c.title for c in tl.chapters] == [
        f"Test ({n}) – Stretch ({side})" for n in (1, 2) for side in ("right", "left")
    ]
    assert [e.start for e in tl.events] == sorted(e.start for e in tl.events)


@pytest.mark.parametrize(("profile", "settle_ms"), [(PHONE, 1000), (BEDSIDE, 1500), (GYM, 300)])
def test_a_moment_to_settle_comes_before_a_hold_is_timed(profile: Profile, settle_ms: int) -> None:
    # Phone and bedside leave time to get into the position just described (it was 0.4 and
    # 0.6 s, so moving came out of the hold); the gym keeps its brisk 0.3 s.
    tl = plan(stretch("30s"), profile)
    for hold in (e for e in tl.events if e.kind == "hold"):
        said = max(e.end for e in tl.events if e.text is not None and e.end <= hold.start)
        assert hold.start - said == ms(settle_ms)


def test_breathing_cues_rotate_and_follow_the_breath_period() -> None:
    tl = plan(stretch(breathe="intensify"), PHONE)
    hold = next(e for e in tl.events if e.kind == "hold")
    cues = [e for e in tl.events if e.kind == "cue" and hold.start <= e.start < hold.end]
    breaths = [c for c in cues if c.text in ENGLISH.breathe_intensify]
    assert len(breaths) >= 6
    assert breaths[0].start == hold.start + ms(3000)
    # rotation: consecutive breathing cues never repeat a wording
    assert all(a.text != b.text for a, b in itertools.pairwise(breaths))
    assert {"Halfway.", "30 seconds left."} <= {c.text for c in cues}


@pytest.mark.parametrize("profile", [PHONE, BEDSIDE, GYM], ids=lambda p: p.name)
def test_a_reminder_takes_a_breaths_turn_rather_than_run_into_one(profile: Profile) -> None:
    # A 40 s bedside hold said a reminder at +15 s and a breathing cue 0.8 s after it, at
    # +21 s (its slot, +18 s, slid past the reminder): 8 s of talk in a quiet hold.
    reminder = "If the pressure fades, press a little harder."
    routine = stretch("30s", breathe="calm", remind=(reminder,))
    tl = plan(routine, profile)
    check_invariants(routine, profile, tl)
    hold = next(e for e in tl.events if e.kind == "hold")
    cues = [e for e in tl.events if e.kind == "cue" and hold.start <= e.start < hold.end]
    breaths = [c for c in cues if c.text in BREATHS]
    assert breaths and breaths[0].start == hold.start + ms(3000)
    said = next(c for c in cues if c.text == reminder)
    near = [b for b in breaths if abs(b.start - said.start) < ms(profile.breath_period_ms) // 2]
    assert near == []  # the breath slot nearest the reminder gave it its turn


def test_calm_and_reminder_cues() -> None:
    tl = plan(stretch(breathe="calm", remind=("Press a little harder.",)), BEDSIDE)
    texts = [e.text for e in tl.events if e.kind == "cue"]
    assert texts.count("Press a little harder.") == 2  # once per side
    assert set(ENGLISH.breathe_calm) & set(texts)
    assert not [e for e in tl.events if e.kind == "countdown"]  # bedside: no countdown


def test_a_reminder_with_no_room_in_its_hold_is_recorded_as_unsaid() -> None:
    # A 5 s hold keeps its first 3 s free: a reminder of a second or more cannot fit.
    tl = plan(stretch("5s", remind=("Let the shoulders drop.",)), PHONE)
    assert "Let the shoulders drop." not in {e.text for e in tl.events}
    assert tl.unsaid == ("Let the shoulders drop.",) * 2  # once per side
    assert plan(stretch(remind=("Let the shoulders drop.",)), PHONE).unsaid == ()


def test_bedside_tells_no_time_in_a_breathing_hold_but_does_in_a_silent_one() -> None:
    clock = {"Halfway.", "30 seconds left."}

    def said(routine: Routine, profile: Profile) -> set[str | None]:
        return {e.text for e in plan(routine, profile).events if e.kind == "cue"}

    assert clock <= said(stretch(breathe="calm"), PHONE)
    assert not clock & said(stretch(breathe="calm"), BEDSIDE)
    assert clock <= said(stretch(), BEDSIDE)  # else silent for over a minute


def test_short_holds_get_no_countdown_and_no_cues_that_do_not_fit() -> None:
    tl = plan(stretch("5s", breathe="intensify"), PHONE)
    assert not [e for e in tl.events if e.kind in ("countdown", "cue")]
    # Not even when asked for: holds under 10 s never count down.
    for profile in (PHONE, GYM):
        tl = plan(stretch("5s", countdown=True), profile)
        assert not [e for e in tl.events if e.kind == "countdown"]
    assert not [
        e for e in plan(stretch("30s", countdown=False), GYM).events if e.kind == "countdown"
    ]


def test_gym_counts_down_aloud() -> None:
    tl = plan(stretch("30s"), GYM)
    counts = [e.text for e in tl.events if e.kind == "countdown"]
    assert counts == ["Three", "Two", "One"] * 2


def test_repeats_are_counted_aloud_and_rounds_of_them_as_rounds() -> None:
    def said(*actions: Action) -> list[str]:
        routine = Routine(id="t", title="T", steps=(Step("S", actions),))
        return [e.text or "" for e in plan(routine, PHONE).events if e.kind == "speech"][2:-1]

    up = Say(("Up.",))
    assert said(Repeat(2, (up,))) == ["2 repetitions.", "One", "Up.", "Two", "Up."]
    # After an inner count, "Two" would be heard as the inner repeat's: an outer one counts
    # rounds. A repeat of 1 is neither announced nor counted.
    assert said(Repeat(2, (Say(("Set.",)), Repeat(2, (up,))))) == [
        "2 rounds.",
        "Round 1.", "Set.", "2 repetitions.", "One", "Up.", "Two", "Up.",
        "Round 2.", "Set.", "2 repetitions.", "One", "Up.", "Two", "Up.",
    ]  # fmt: skip
    assert said(Repeat(1, (up,)), Repeat(1, (Repeat(2, (up,)),))) == [
        "Up.", "2 repetitions.", "One", "Up.", "Two", "Up.",
    ]  # fmt: skip


def test_bedside_starts_with_an_instruction_at_once() -> None:
    def said(routine: Routine, profile: Profile = BEDSIDE) -> list[str]:
        return [e.text for e in plan(routine, profile).events if e.kind == "speech"]

    tl = plan(stretch(), BEDSIDE)
    assert next(e for e in tl.events if e.kind == "speech").start <= ms(2000)
    # The first instruction, not the step's title (that is its chapter's), then the side.
    assert said(stretch())[:3] == ["Get ready.", "Start with the right side.", "Now the left side."]
    assert [c.title for c in tl.chapters] == ["Stretch (right)", "Stretch (left)"]
    # A first instruction that names its side needs no announcement after it; a step
    # that starts with a hold still says which side first.
    step = Step("Stretch", (Say(("Lift the {side} heel.", "Up.")),), ("right", "left"))
    assert said(Routine(id="t", title="T", steps=(step,)))[:3] == [
        "Lift the right heel.", "Up.", "Now the left side.",
    ]  # fmt: skip
    # A step that starts with a hold is named (a chime and silence told nothing), then
    # its side.
    step = Step("Stretch", (Hold(DurationRange(30_000, 30_000)),), ("right", "left"))
    assert said(Routine(id="t", title="T", steps=(step,)))[:2] == [
        "Stretch.", "Start with the right side.",
    ]  # fmt: skip
    step = Step("Shake the leg", (Hold(DurationRange(10_000, 10_000)),))
    assert said(Routine(id="t", title="T", steps=(step,)))[0] == "Shake the leg."
    # Other profiles name the step first.
    assert "Get ready." not in said(stretch(), PHONE)[:2]


def test_a_session_names_its_routines_by_their_titles_head() -> None:
    # A chapter was "Hamstring cramps: pressure points and stretches - Osteo-pressure
    # beside the knee (right)", cut short by players; the title "A: x + B: y".
    cramps = dataclasses.replace(stretch(), title="Cramps: points and stretches")
    other = dataclasses.replace(stretch(), title="Cramps: at night")
    script = make_session_script("s", "S", (cramps, stretch()), GYM, ENGLISH)
    sounds = {k: len(v) for k, v in sound_set(GYM.chimes, RATE).items()}
    tl = build_timeline(script, fake_lengths(script.texts(), 0), sounds, RATE)
    assert [c.title for c in tl.chapters][::2] == [
        "Cramps – Stretch (right)",
        "Test – Stretch (right)",
    ]
    assert "Routine 1: Cramps: points and stretches." in script.texts()  # said in full
    # Two that share the head are told apart by their number, as announced.
    script = make_session_script("s", "S", (cramps, other), GYM, ENGLISH)
    tl = build_timeline(script, fake_lengths(script.texts(), 0), sounds, RATE)
    assert [c.title for c in tl.chapters][::2] == [
        "Cramps (1) – Stretch (right)", "Cramps (2) – Stretch (right)",
    ]  # fmt: skip
    assert short_title("Ratio: 1:2") == "Ratio" and short_title(": odd") == ": odd"
    assert short_title("No subtitle") == "No subtitle"


def test_a_bedside_session_starts_with_an_instruction_and_says_a_note_once() -> None:
    careful = dataclasses.replace(stretch(), safety="Mind your knees.")
    other = dataclasses.replace(stretch(), title="Other", safety="Go gently.")

    def said(profile: Profile, *routines: Routine) -> list[str | None]:
        script = make_session_script("s", "S", routines, profile, ENGLISH)
        sounds = {k: len(v) for k, v in sound_set(profile.chimes, RATE).items()}
        tl = build_timeline(script, fake_lengths(script.texts(), 0), sounds, RATE)
        speech = [e for e in tl.events if e.kind == "speech"]
        if profile is BEDSIDE:
            assert speech[0].start <= ms(2000)
        return [e.text for e in speech]

    # Bedside: the first instruction at once, not "Routine 1: Test." (it came first, and
    # the first instruction 7 s in); the routines after it are still announced.
    bedside = said(BEDSIDE, careful, careful, other)
    assert bedside[0] == "Get ready."
    assert "Routine 1: Test." not in bedside and "Routine 2: Test." in bedside
    assert "Routine 3: Other." in bedside
    # A safety note is said once in a session, however many of its routines share it.
    assert bedside.count("A word of care. Mind your knees.") == 1
    assert bedside.count("A word of care. Go gently.") == 1
    phone = said(PHONE, careful, careful, other)
    assert phone[0] == "Routine 1: Test."
    assert phone.count("Mind your knees.") == 1 and phone.count("Go gently.") == 1
    assert phone.index("Mind your knees.") < phone.index("Routine 2: Test.")


def test_a_session_says_its_routines_closing_words_at_its_end() -> None:
    # Each routine's outro was said where it ended: "A few tips to finish." and "If the
    # cramp comes back, start again from the beginning." six minutes into a session.
    tips = dataclasses.replace(stretch(), outro=("Tips to finish.",), safety="Mind your knees.")
    other = dataclasses.replace(stretch(), title="Other", outro=("Start again if it comes back.",))

    def said(profile: Profile, *routines: Routine) -> list[str | None]:
        script = make_session_script("s", "S", routines, profile, ENGLISH)
        sounds = {k: len(v) for k, v in sound_set(profile.chimes, RATE).items()}
        tl = build_timeline(script, fake_lengths(script.texts(), 0), sounds, RATE)
        return [e.text for e in tl.events if e.kind == "speech"]

    phone = said(PHONE, tips, other, tips)
    end = phone.index("Tips to finish.")
    assert end > max(i for i, text in enumerate(phone) if text == "Routine 3: Test.")
    assert phone[end:] == [
        "Tips to finish.",  # a routine played twice closes once
        "Start again if it comes back.",
        "That is the end of the session. Well done.",
    ]
    # Bedside says its safety note at the end: of the session, with the closing words.
    bedside = said(BEDSIDE, tips, other)
    assert bedside[-4:] == [
        "Tips to finish.",
        "A word of care. Mind your knees.",
        "Start again if it comes back.",
        "That is the end of the session. Rest well.",
    ]


def test_bedside_ends_by_sending_the_listener_back_to_sleep() -> None:
    # "Well done." was the last thing a listener heard before going back to sleep.
    def last(profile: Profile) -> str | None:
        return [e.text for e in plan(stretch(), profile).events if e.kind == "speech"][-1]

    assert last(BEDSIDE) == "That is the end of the routine. Rest well."
    assert last(PHONE) == last(GYM) == "That is the end of the routine. Well done."
    sessions = {
        p.name: make_session_script("s", "S", [stretch(), stretch()], p, ENGLISH).texts()[-1]
        for p in (PHONE, BEDSIDE)
    }
    assert sessions == {
        "phone": "That is the end of the session. Well done.",
        "bedside": "That is the end of the session. Rest well.",
    }


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_cue_sheet_matches_the_contract(name: str) -> None:
    sheet = cue_sheet(plan(stretch(breathe="intensify"), PROFILES[name]))
    assert list(sheet) == [
        "routine", "profile", "language", "sample_rate", "duration_ms", "chapters", "events",
    ]  # fmt: skip
    assert sheet["sample_rate"] == RATE
    kinds = {e["kind"] for e in sheet["events"]}
    assert kinds <= {"speech", "cue", "hold", "pause", "chime", "countdown", "music"}
    for event in sheet["events"]:
        if event["kind"] == "hold":
            assert set(event) == {"kind", "start_ms", "end_ms", "step", "side", "breathe"}
        if event["kind"] == "chime":
            assert set(event) == {"kind", "start_ms", "end_ms", "sound"}
        if event["kind"] == "countdown":
            # Ticks and spoken counts alike name their sound; a spoken one also its word.
            spoken = name == "gym"
            keys = {"kind", "start_ms", "end_ms", "sound"} | ({"text"} if spoken else set())
            assert set(event) == keys
            assert event["sound"] == ("voice" if spoken else "tick")
    counts = [e for e in sheet["events"] if e["kind"] == "countdown"]
    assert len(counts) == (0 if name == "bedside" else 6)  # 3 a side
    assert sheet["chapters"][-1]["end_ms"] == sheet["duration_ms"]


def test_format_length_counts_hours_from_an_hour_on() -> None:
    assert format_length(0) == "00:00"
    assert format_length(83_499) == "01:23"
    assert format_length(83_500) == "01:24"  # to the nearest second, as the playlist's
    assert format_length(3_599_499) == "59:59"
    assert format_length(3_599_500) == "1:00:00"
    assert format_length(3_600_000) == "1:00:00"
    assert format_length(5_700_000) == "1:35:00"
    assert format_length(14_400_000) == "4:00:00"
