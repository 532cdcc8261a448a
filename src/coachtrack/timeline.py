"""Script + clip lengths -> events placed in samples. Pure: no audio, no I/O.

Times are whole samples at the track's sample rate; the cue sheet shows them as
integer milliseconds, `round(samples * 1000 / rate)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from coachtrack.script import (
    ChapterMark,
    ChimeItem,
    Gap,
    HoldItem,
    Line,
    PauseItem,
    Script,
)

EventKind = Literal["speech", "cue", "hold", "pause", "chime", "countdown", "music"]
CUE_FREE_START_MS = 3_000  # the first seconds of a hold are left quiet
COUNTDOWN_MS = 3_000  # ticks at 3, 2 and 1 s before the end
SPOKEN_COUNT_MAX_MS = 900  # a spoken "three" must end before "two" starts
SPOKEN_COUNT_SOUND = "voice"  # the cue sheet's `sound` of a spoken countdown (ticks say "tick")
_KIND_ORDER = {"music": 0, "chime": 1, "hold": 2, "pause": 2, "speech": 3, "cue": 3, "countdown": 3}


@dataclass(frozen=True, slots=True)
class Event:
    """One thing on the timeline, from `start` to `end` in samples."""

    kind: EventKind
    start: int
    end: int
    text: str | None = None
    sound: str | None = None
    step: int | None = None
    side: str | None = None
    breathe: str | None = None


@dataclass(frozen=True, slots=True)
class Chapter:
    """A skippable part of the track: one step and side."""

    title: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Timeline:
    """The whole track, placed in samples."""

    routine_id: str
    title: str
    profile: str
    language: str
    sample_rate: int
    duration: int
    events: tuple[Event, ...]
    chapters: tuple[Chapter, ...]
    unsaid: tuple[str, ...] = ()  # reminders their hold had no room for (the first 3 s stay free)

    def to_ms(self, samples: int) -> int:
        """Samples to the cue sheet's integer milliseconds."""
        return round(samples * 1000 / self.sample_rate)

    def spoken(self) -> tuple[Event, ...]:
        """Every event that plays a speech clip, in order."""
        return tuple(e for e in self.events if e.text is not None)


@dataclass(slots=True)
class _Placer:
    """Walks the script once, keeping the cursor and the cue rotation."""

    script: Script
    clip_samples: Mapping[str, int]
    sound_samples: Mapping[str, int]
    rate: int
    cursor: int = 0
    last_speech_end: int = 0
    events: list[Event] = field(default_factory=list)
    chapter_starts: list[tuple[str, int]] = field(default_factory=list)
    rotation: dict[str, int] = field(default_factory=dict)
    end: int = 0
    unsaid: list[str] = field(default_factory=list)

    def samples(self, ms: float) -> int:
        return round(ms * self.rate / 1000)

    def add(self, event: Event) -> Event:
        self.events.append(event)
        self.end = max(self.end, event.end)
        return event

    def chime(self, sound: str, at: int) -> None:
        self.add(Event("chime", at, at + self.sound_samples[sound], sound=sound))

    def line(self, item: Line) -> None:
        start = self.cursor
        end = start + self.clip_samples[item.text]
        self.add(Event("speech", start, end, text=item.text, step=item.step, side=item.side))
        self.last_speech_end = end
        self.cursor = end + self.samples(self.script.profile.gap_ms)

    def track_chime(self, item: ChimeItem) -> None:
        profile = self.script.profile
        if item.sound == "start":  # the track's start; in a session, each routine's too
            lead = self.last_speech_end + self.samples(profile.chime_lead_ms)
            at = max(self.cursor, lead) if self.events else 0
            self.chime("start", at)
            self.cursor = at + self.samples(profile.first_speech_ms)
            return
        at = max(self.cursor, self.last_speech_end + self.samples(profile.chime_lead_ms))
        self.chime("end", at)
        self.end = max(self.end, at + self.samples(profile.tail_ms))
        self.cursor = self.end

    def pause(self, item: PauseItem) -> None:
        start = self.cursor
        end = start + self.samples(item.length_ms)
        self.add(Event("pause", start, end, step=item.step, side=item.side))
        self.cursor = end

    def hold(self, item: HoldItem) -> None:
        profile = self.script.profile
        start = max(self.cursor, self.last_speech_end + self.samples(profile.chime_lead_ms))
        end = start + self.samples(item.length_ms)
        self.chime("hold-start", start)
        self.add(Event("hold", start, end, step=item.step, side=item.side, breathe=item.breathe))
        cue_zone_end = end - self.samples(profile.cue_gap_ms)
        if item.countdown:
            self.countdown(end)
            cue_zone_end = end - self.samples(COUNTDOWN_MS + profile.cue_gap_ms)
        _CueFitter(self, start + self.samples(CUE_FREE_START_MS), cue_zone_end).place(item, start)
        self.chime("hold-end", end)
        self.cursor = end + self.samples(profile.after_chime_ms)

    def countdown(self, end: int) -> None:
        words = self.script.countdown_words()
        spoken = self.script.profile.countdown == "spoken" and all(
            self.clip_samples[w] <= self.samples(SPOKEN_COUNT_MAX_MS) for w in words
        )
        for seconds, word in zip((3, 2, 1), words, strict=True):
            at = end - self.samples(seconds * 1000)
            if spoken:
                self.add(Event("countdown", at, at + self.clip_samples[word], text=word))
            else:
                self.add(Event("countdown", at, at + self.sound_samples["tick"], sound="tick"))

    def next_cue(self, wordings: tuple[str, ...], key: str) -> str:
        return wordings[self.rotation.get(key, 0) % len(wordings)]

    def used_cue(self, key: str) -> None:
        self.rotation[key] = self.rotation.get(key, 0) + 1


@dataclass(slots=True)
class _CueFitter:
    """Places the cues of one hold inside [zone_start, zone_end], never overlapping."""

    placer: _Placer
    zone_start: int
    zone_end: int
    taken: list[tuple[int, int]] = field(default_factory=list)

    def fits(self, start: int, length: int, gap: int | None = None) -> bool:
        """Whether `length` samples at `start` lie in the zone, `gap` (by default the
        profile's `cue_gap_ms`) clear of every cue placed."""
        if gap is None:
            gap = self.placer.samples(self.placer.script.profile.cue_gap_ms)
        end = start + length
        if start < self.zone_start or end > self.zone_end:
            return False
        return all(end + gap <= s or start >= e + gap for s, e in self.taken)

    def put(self, start: int, text: str) -> None:
        length = self.placer.clip_samples[text]
        self.taken.append((start, start + length))
        self.placer.add(Event("cue", start, start + length, text=text))

    def place_near(self, wanted: int, text: str) -> bool:
        """Put `text` at `wanted`, or as close to it as fits within one second steps."""
        length = self.placer.clip_samples[text]
        step = self.placer.samples(500)
        for k in range(0, 41):
            for candidate in (wanted + k * step, wanted - k * step):
                if self.fits(candidate, length):
                    self.put(candidate, text)
                    return True
        return False

    def place(self, hold: HoldItem, hold_start: int) -> None:
        placer = self.placer
        hold_end = hold_start + placer.samples(hold.length_ms)
        for cue in hold.timed:
            self.place_near(hold_end - placer.samples(cue.before_end_ms), cue.text)
        if hold.halfway:
            mid = (hold_start + hold_end) // 2
            self.place_near(mid, hold.halfway)
        for i, text in enumerate(hold.reminders):
            # Spread reminders over the hold, clear of the halfway mark.
            span = self.zone_end - self.zone_start
            wanted = self.zone_start + span * (2 * i + 1) // (2 * len(hold.reminders) + 1)
            if not self.place_near(wanted, text):
                placer.unsaid.append(text)
        if hold.breathe:
            self.breaths(hold)

    def breaths(self, hold: HoldItem) -> None:
        placer = self.placer
        assert hold.breathe is not None
        wordings = placer.script.cues_for(hold.breathe)
        period = placer.samples(placer.script.profile.breath_period_ms)
        # A breathing cue keeps a third of a period of quiet from any other cue: one that
        # came 0.8 s after a reminder made 8 s of talk in a hold. A fixed cue (time,
        # halfway, reminder) near a breath slot takes its turn instead.
        room = period // 3
        slot = self.zone_start
        while slot < self.zone_end:
            text = placer.next_cue(wordings, hold.breathe)
            length = placer.clip_samples[text]
            # A breath slot may slide later (not past half a period) to clear a fixed cue.
            for shift in range(0, period // 2, placer.samples(500)):
                if self.fits(slot + shift, length, room):
                    self.put(slot + shift, text)
                    placer.used_cue(hold.breathe)
                    break
            slot += period


def build_timeline(
    script: Script,
    clip_samples: Mapping[str, int],
    sound_samples: Mapping[str, int],
    sample_rate: int,
) -> Timeline:
    """Place every item of the script in time, given how long each clip and sound is."""
    placer = _Placer(script, clip_samples, sound_samples, sample_rate)
    for item in script.items:
        if isinstance(item, Line):
            placer.line(item)
        elif isinstance(item, HoldItem):
            placer.hold(item)
        elif isinstance(item, PauseItem):
            placer.pause(item)
        elif isinstance(item, ChimeItem):
            placer.track_chime(item)
        elif isinstance(item, Gap):
            placer.cursor += placer.samples(item.ms)
        elif isinstance(item, ChapterMark):
            placer.chapter_starts.append((item.title, placer.cursor))
    duration = max(placer.end, placer.cursor)
    return Timeline(
        routine_id=script.routine_id,
        title=script.title,
        profile=script.profile.name,
        language=script.language,
        sample_rate=sample_rate,
        duration=duration,
        events=tuple(sorted(placer.events, key=lambda e: (e.start, _KIND_ORDER[e.kind]))),
        chapters=_chapters(placer.chapter_starts, duration),
        unsaid=tuple(placer.unsaid),
    )


def _chapters(starts: list[tuple[str, int]], duration: int) -> tuple[Chapter, ...]:
    # The first chapter starts at 0: the intro belongs to it.
    bounds = [0] + [start for _, start in starts[1:]] + [duration]
    return tuple(Chapter(title, bounds[i], bounds[i + 1]) for i, (title, _) in enumerate(starts))


def with_music(timeline: Timeline) -> Timeline:
    """The same timeline with a music bed under all of it."""
    music = Event("music", 0, timeline.duration, sound="music")
    events = sorted((music, *timeline.events), key=lambda e: (e.start, _KIND_ORDER[e.kind]))
    return replace(timeline, events=tuple(events))


def cue_sheet(timeline: Timeline) -> dict[str, Any]:
    """The timeline as the JSON cue sheet of DESIGN.md."""
    ms = timeline.to_ms
    return {
        "routine": timeline.routine_id,
        "profile": timeline.profile,
        "language": timeline.language,
        "sample_rate": timeline.sample_rate,
        "duration_ms": ms(timeline.duration),
        "chapters": [
            {"title": c.title, "start_ms": ms(c.start), "end_ms": ms(c.end)}
            for c in timeline.chapters
        ],
        "events": [_event_json(e, ms(e.start), ms(e.end)) for e in timeline.events],
    }


def _event_json(event: Event, start_ms: int, end_ms: int) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": event.kind, "start_ms": start_ms, "end_ms": end_ms}
    if event.kind == "speech":
        out |= {"text": event.text, "step": event.step, "side": event.side}
    elif event.kind == "hold":
        out |= {"step": event.step, "side": event.side, "breathe": event.breathe}
    elif event.kind == "cue":
        out["text"] = event.text
    elif event.kind == "pause":
        out |= {"step": event.step, "side": event.side}
    elif event.kind == "countdown":
        # Every countdown names its sound; a spoken one says which word it speaks.
        out["sound"] = SPOKEN_COUNT_SOUND if event.text is not None else event.sound
        if event.text is not None:
            out["text"] = event.text
    elif event.text is not None:
        out["text"] = event.text
    else:
        out["sound"] = event.sound
    return out


def format_ms(ms: int) -> str:
    """`MM:SS.mmm`, minutes counting on past an hour."""
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def format_length(ms: int) -> str:
    """A track's length to the nearest second (as the playlist's and the LRC's): `MM:SS`,
    and `H:MM:SS` from an hour on."""
    hours, seconds = divmod((max(ms, 0) + 500) // 1000, 3600)
    if hours:
        return f"{hours}:{seconds // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def plan_text(timeline: Timeline) -> str:
    """The timeline as aligned text: `MM:SS.mmm  kind  text`, a line per event, nothing else."""
    ms = timeline.to_ms
    return "".join(
        f"{format_ms(ms(e.start))}  {e.kind:<9}  {_describe(e, ms)}\n" for e in timeline.events
    )


def _describe(event: Event, ms: Any) -> str:
    if event.text is not None:
        return event.text
    if event.kind in ("hold", "pause"):
        seconds = (ms(event.end) - ms(event.start)) / 1000
        where = f" step {event.step}" if event.step else ""
        where += f" ({event.side})" if event.side else ""
        breathe = f", breathe {event.breathe}" if event.breathe else ""
        return f"{seconds:g} s{where}{breathe}"
    return event.sound or ""
