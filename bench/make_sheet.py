"""Realistic cue sheets and routines of any length, for benchmarking without a working CLI.

Three ways to get one:

- `sheet --minutes M`: a standalone cue sheet (DESIGN.md's JSON format, phone
  profile timing), built here without importing coachtrack.
- `from-routine PATH --profile P`: the real timeline of a routine, computed with
  coachtrack's pure modules (loader, script, timeline), clip lengths estimated
  from the text instead of spoken.
- `routine --minutes M`: a routine YAML of about that length, for `coachtrack build`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_RATE = 22050
RATE_WPM = {"phone": 165, "bedside": 130, "gym": 190}

# Phone-profile timing (mirrors src/coachtrack/profiles.py and sounds.py, in ms).
FIRST_SPEECH_MS = 1_300
GAP_MS = 450
CHIME_LEAD_MS = 400
AFTER_CHIME_MS = 900
STEP_GAP_MS = 900
CUE_GAP_MS = 500
TAIL_MS = 1_500
BREATH_PERIOD_MS = 12_000
CUE_FREE_START_MS = 3_000
COUNTDOWN_MS = 3_000
SIDE_MS = 202_000  # one side of a synthetic step, with its speech, holds and gaps
OUTRO_MS = 12_000
ROUTINE_STEP_MS = 405_000  # one two-sided step of `routine_yaml`, as coachtrack times it
SOUND_MS = {"start": 1_500, "end": 1_700, "hold-start": 900, "hold-end": 1_000, "tick": 90}

PARTS = [
    "hamstring",
    "calf",
    "thigh",
    "hip",
    "lower back",
    "glute",
    "groin",
    "ankle",
    "shin",
    "knee",
    "foot",
    "side",
]
TITLES = [
    "Sitting {part} stretch",
    "Standing {part} stretch",
    "Kneeling {part} stretch",
    "Lying {part} release",
    "Pressure point for the {part}",
    "Wall {part} stretch",
]
HOW = ["slowly", "gently", "calmly", "carefully", "smoothly"]
SETUP = [
    "Sit on the floor, and {how} stretch both legs out long in front of you.",
    "Stand tall, feet hip width apart, and {how} shift your weight onto the {side} leg.",
    "Come onto your hands and knees, and {how} rest your shins on the mat.",
    "Lie on your back, and {how} draw the {side} knee toward your chest.",
    "Loop the strap around the ball of your {side} foot, and feel the {part} lengthen.",
    "Place the mini foam roller just beneath your {side} {part}.",
    "Find the broad bone just below the {side} knee, and {how} settle your fingers there.",
    "Set the ball of the tool on that spot beside the {part}, and press in {how}.",
    "Keep your back long, and {how} let your shoulders drop.",
    "Ease into the {part} stretch until you feel a strong, steady pull.",
]
TRANSITION = [
    "And let go of the {part}.",
    "Release {how}, and shake the {part} out gently.",
    "Now draw the strap a little closer, and {how} straighten the {side} knee.",
    "Lean forward from the hips, keeping the {part} long.",
    "Tilt the tool a little, to reach the {part} from a slightly different angle.",
    "Let the {side} leg rest for a moment, and breathe {how}.",
    "Sit up tall, with a straight back, and {how} find the {part} stretch again.",
    "Take the foot a little further back with every breath out, {how}.",
]
CLOSING = [
    "Slowly come out of the {part} stretch, and bring your feet together.",
    "Take the strap off, and {how} rest the {side} leg.",
    "Release the pressure, and let the {part} relax.",
]
BREATHE = [
    "Breathe out, and go a little deeper.",
    "As you exhale, ease further into the stretch.",
    "Let the breath out slowly, and sink a little further.",
    "Breathe out, and let the muscle give a little more.",
]
REMIND = [
    "Keep your back long and straight.",
    "As the pressure eases, press a little harder.",
    "If your knees complain, lift your seat a little.",
]


def estimate_ms(text: str, rate_wpm: int = RATE_WPM["phone"]) -> int:
    """How long espeak-ng speaks `text` at `rate_wpm` (fitted on the shipped routines)."""
    return round(300 + 57.6 * len(text) * RATE_WPM["phone"] / rate_wpm)


@dataclass
class _Sheet:
    """A phone-profile timeline under construction, in milliseconds."""

    cursor: int = 0
    last_speech_end: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    chapters: list[dict[str, Any]] = field(default_factory=list)
    breath: int = 0

    def sound(self, name: str, at: int, kind: str = "chime") -> None:
        self.events.append(
            {"kind": kind, "start_ms": at, "end_ms": at + SOUND_MS[name], "sound": name}
        )

    def say(self, text: str, step: int | None = None, side: str | None = None) -> None:
        end = self.cursor + estimate_ms(text)
        self.events.append(
            {
                "kind": "speech",
                "start_ms": self.cursor,
                "end_ms": end,
                "text": text,
                "step": step,
                "side": side,
            }
        )
        self.last_speech_end = end
        self.cursor = end + GAP_MS

    def pause(self, ms: int, step: int, side: str | None) -> None:
        self.events.append(
            {
                "kind": "pause",
                "start_ms": self.cursor,
                "end_ms": self.cursor + ms,
                "step": step,
                "side": side,
            }
        )
        self.cursor += ms

    def hold(
        self, ms: int, step: int, side: str | None, *, breathe: bool, remind: str | None
    ) -> None:
        start = max(self.cursor, self.last_speech_end + CHIME_LEAD_MS)
        end = start + ms
        self.sound("hold-start", start)
        self.events.append(
            {
                "kind": "hold",
                "start_ms": start,
                "end_ms": end,
                "step": step,
                "side": side,
                "breathe": "intensify" if breathe else None,
            }
        )
        zone = (start + CUE_FREE_START_MS, end - COUNTDOWN_MS - CUE_GAP_MS)
        for at in (end - 3000, end - 2000, end - 1000):
            self.sound("tick", at, kind="countdown")
        taken: list[tuple[int, int]] = []
        wanted: list[tuple[int, str]] = []
        if ms >= 90_000:
            wanted.append((end - 30_000, "30 seconds left."))
        if ms >= 60_000:
            wanted.append(((start + end) // 2, "Halfway there."))
        if remind:
            wanted.append((zone[0] + (zone[1] - zone[0]) // 3, remind))
        for at, text in wanted:
            self._cue_near(at, text, zone, taken)
        slot = zone[0]
        while breathe and slot < zone[1]:
            text = BREATHE[self.breath % len(BREATHE)]
            if self._cue_near(slot, text, zone, taken, forward_only=True):
                self.breath += 1
            slot += BREATH_PERIOD_MS
        self.sound("hold-end", end)
        self.cursor = end + AFTER_CHIME_MS

    def _cue_near(
        self,
        at: int,
        text: str,
        zone: tuple[int, int],
        taken: list[tuple[int, int]],
        *,
        forward_only: bool = False,
    ) -> bool:
        length = estimate_ms(text)
        shifts = range(0, 6000, 500) if forward_only else (0, 500, -500, 1000, -1000, 2000, -2000)
        for shift in shifts:
            s, e = at + shift, at + shift + length
            if (
                s >= zone[0]
                and e <= zone[1]
                and all(e + CUE_GAP_MS <= ts or s >= te + CUE_GAP_MS for ts, te in taken)
            ):
                taken.append((s, e))
                self.events.append({"kind": "cue", "start_ms": s, "end_ms": e, "text": text})
                return True
        return False


def _fill(text: str, part: str, side: str, how: str = "slowly") -> str:
    return text.replace("{part}", part).replace("{side}", side).replace("{how}", how)


def synthetic_sheet(minutes: float, *, seed: int = 1) -> dict[str, Any]:
    """A phone-profile cue sheet of about `minutes`, shaped like hamstring-cramps."""
    rnd = random.Random(seed)
    target = round(minutes * 60_000)
    sheet = _Sheet()
    sheet.sound("start", 0)
    sheet.cursor = FIRST_SPEECH_MS
    for text in [
        "Benchmark routine: stretches and pressure points.",
        "This routine is for cramps in the back of the thigh.",
        "Every hold is timed. A chime tells you when to start and when to let go.",
        "You will need: a mini foam roller, a stretching strap and an osteopressure tool.",
        "Ease off or stop if any position hurts. A strong pull is fine, sharp pain is not.",
    ]:
        sheet.say(text)
    step = 0
    # One side of a step lasts about 3.4 minutes; stop when the next would overshoot.
    while sheet.cursor + SIDE_MS // 2 < target - OUTRO_MS:
        step += 1
        part, how = PARTS[(step - 1) % len(PARTS)], HOW[(step - 1) // len(PARTS) % len(HOW)]
        title = _fill(TITLES[(step - 1) % len(TITLES)], part, "")
        for i, side in enumerate(("right", "left")):
            if i and sheet.cursor + SIDE_MS // 2 >= target - OUTRO_MS:
                break
            if step > 1 or i:
                sheet.cursor += STEP_GAP_MS
            sheet.chapters.append({"title": f"{title} ({side})", "start_ms": sheet.cursor})
            if i == 0:
                sheet.say(f"Step {step}: {title}.", step, side)
                sheet.say(f"Start with the {side} side.", step, side)
            else:
                sheet.say(f"Now the {side} side.", step, side)
            for text in rnd.sample(SETUP, 3):
                sheet.say(_fill(text, part, side, how), step, side)
            sheet.hold(30_000, step, side, breathe=False, remind=None)
            for text in rnd.sample(TRANSITION, 4):
                sheet.say(_fill(text, part, side, how), step, side)
            sheet.hold(135_000, step, side, breathe=True, remind=rnd.choice(REMIND))
            sheet.say(_fill(rnd.choice(CLOSING), part, side, how), step, side)
            if step % 3 == 0:
                sheet.pause(5_000, step, side)
                sheet.say("Take a moment to get into position.", step, side)
    for text in ["That is the whole routine.", "Well done. Take it easy for a moment."]:
        sheet.say(text)
    end_at = max(sheet.cursor, sheet.last_speech_end + CHIME_LEAD_MS)
    sheet.sound("end", end_at)
    duration = max(end_at + TAIL_MS, max(e["end_ms"] for e in sheet.events))
    starts = [c["start_ms"] for c in sheet.chapters[1:]] + [duration]
    chapters = [
        {"title": c["title"], "start_ms": 0 if i == 0 else c["start_ms"], "end_ms": starts[i]}
        for i, c in enumerate(sheet.chapters)
    ]
    order = {"music": 0, "chime": 1, "hold": 2, "pause": 2}
    events = sorted(sheet.events, key=lambda e: (e["start_ms"], order.get(e["kind"], 3)))
    return {
        "routine": f"synthetic-{minutes:g}m",
        "profile": "phone",
        "language": "en",
        "sample_rate": SAMPLE_RATE,
        "duration_ms": duration,
        "chapters": chapters,
        "events": events,
    }


def sheet_from_routine(path: Path, profile: str = "phone") -> dict[str, Any]:
    """The real timeline of a routine via coachtrack's pure modules, clip lengths estimated."""
    from coachtrack import sounds
    from coachtrack.loader import load_routine
    from coachtrack.phrases import phrasebook
    from coachtrack.profiles import get_profile
    from coachtrack.script import make_script
    from coachtrack.timeline import build_timeline, cue_sheet

    routine = load_routine(path)
    prof = get_profile(profile)
    script = make_script(routine, prof, phrasebook(routine.language))
    clips = {
        text: estimate_ms(text, prof.rate_wpm) * SAMPLE_RATE // 1000 for text in script.texts()
    }
    sound_set = sounds.sound_set(prof.chimes, SAMPLE_RATE)
    lengths = {name: len(audio) for name, audio in sound_set.items()}
    return cue_sheet(build_timeline(script, clips, lengths, SAMPLE_RATE))


def _routine_lines(minutes: float) -> Iterator[str]:
    yield f'title: "Benchmark routine, about {minutes:g} minutes"'
    yield "id: bench-long"
    yield "language: en"
    yield "equipment: [mini foam roller, stretching strap, osteopressure tool]"
    yield 'safety: "Ease off or stop if any position hurts."'
    yield "intro:"
    yield '  - "This is a long routine, made for benchmarking."'
    yield "steps:"
    n_steps = max(1, math.ceil((minutes - 1.0) * 60_000 / ROUTINE_STEP_MS))
    for step in range(1, n_steps + 1):
        part, how = PARTS[(step - 1) % len(PARTS)], HOW[(step - 1) // len(PARTS) % len(HOW)]
        # Vary the wording per step, so a cold build has as many distinct lines as a real one.
        tag = f" (set {step})" if step > len(PARTS) else ""
        title = _fill(TITLES[(step - 1) % len(TITLES)], part, "") + tag
        rnd = random.Random(step)

        def texts(pool: list[str], k: int) -> str:
            return _yaml_list(rnd.sample(pool, k), part, how)  # noqa: B023 (used at once)

        yield f"  - title: {json.dumps(title)}"
        yield "    sides: [right, left]"
        yield "    do:"
        yield f"      - say: {texts(SETUP, 3)}"
        yield "      - hold: 30s"
        yield f"      - say: {texts(TRANSITION, 4)}"
        yield "      - hold: 2m..2m30s"
        yield "        breathe: intensify"
        yield f"        remind: {json.dumps(rnd.choice(REMIND))}"
        yield f"      - say: {texts(CLOSING, 1)}"
        if step % 3 == 0:
            yield "      - pause: 5s"
    yield "outro: [That is the whole routine., Well done.]"


def _yaml_list(templates: list[str], part: str, how: str) -> str:
    """A YAML flow list of filled templates, each double-quoted (JSON strings are YAML)."""
    return "[" + ", ".join(json.dumps(_fill(t, part, "{side}", how)) for t in templates) + "]"


def routine_yaml(minutes: float) -> str:
    """A valid routine YAML (schema 1) of at least about `minutes` in the phone profile."""
    return "\n".join(_routine_lines(minutes)) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: write a cue sheet or a routine to a file or stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_sheet = sub.add_parser("sheet", help="standalone synthetic cue sheet (phone timing)")
    p_sheet.add_argument("--minutes", type=float, default=28.0)
    p_sheet.add_argument("--seed", type=int, default=1)
    p_from = sub.add_parser("from-routine", help="real timeline, estimated clip lengths")
    p_from.add_argument("routine", type=Path)
    p_from.add_argument("--profile", default="phone")
    p_routine = sub.add_parser("routine", help="routine YAML of about this length")
    p_routine.add_argument("--minutes", type=float, default=180.0)
    for p in (p_sheet, p_from, p_routine):
        p.add_argument("-o", "--out", type=Path, help="output file (default: stdout)")
    args = parser.parse_args(argv)
    if args.cmd == "sheet":
        text = json.dumps(synthetic_sheet(args.minutes, seed=args.seed), indent=1)
    elif args.cmd == "from-routine":
        text = json.dumps(sheet_from_routine(args.routine, args.profile), indent=1)
    else:
        text = routine_yaml(args.minutes)
    text = text if text.endswith("\n") else text + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
