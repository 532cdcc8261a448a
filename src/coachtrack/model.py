"""The routine as the loader hands it on: frozen values, no YAML left in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Breathe = Literal["intensify", "calm"]
RangePick = Literal["shortest", "middle", "longest"]


@dataclass(frozen=True, slots=True)
class Where:
    """Where a value was written: for messages about it later."""

    path: str
    line: int  # 1-based
    col: int  # 1-based


@dataclass(frozen=True, slots=True)
class Place:
    """A spoken text as written, where, and under which key: for messages once it is spoken."""

    text: str
    where: Where
    key: str  # e.g. "steps[0].do[1].say[2]"


@dataclass(frozen=True, slots=True)
class DurationRange:
    """A length as written: `30s` (shortest == longest) or a range `2m..2m30s`."""

    shortest_ms: int
    longest_ms: int

    def pick_ms(self, pick: RangePick) -> int:
        """The length a profile takes from the range, in whole milliseconds."""
        if pick == "shortest":
            return self.shortest_ms
        if pick == "longest":
            return self.longest_ms
        return (self.shortest_ms + self.longest_ms) // 2  # the middle


@dataclass(frozen=True, slots=True)
class Say:
    """Lines spoken one after another."""

    lines: tuple[str, ...]
    where: Where | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Hold:
    """A timed hold between a start and an end chime."""

    length: DurationRange
    breathe: Breathe | None = None
    remind: tuple[str, ...] = ()
    countdown: bool | None = None  # None: the profile decides; False: none (never under 10 s)
    where: Where | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Pause:
    """Quiet time to get into position: no chimes, no cues."""

    length: DurationRange
    where: Where | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Repeat:
    """The same actions, `times` times in a row."""

    times: int
    actions: tuple[Action, ...]
    where: Where | None = field(default=None, compare=False)


Action = Say | Hold | Pause | Repeat


@dataclass(frozen=True, slots=True)
class Step:
    """One exercise; done once per side when `sides` is given."""

    title: str
    actions: tuple[Action, ...]
    sides: tuple[str, ...] = ()
    where: Where | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Routine:
    """A whole routine file, validated."""

    id: str
    title: str
    steps: tuple[Step, ...]
    language: str = "en"
    body_part: str | None = None
    level: str | None = None
    equipment: tuple[str, ...] = ()
    source: str | None = None
    safety: str | None = None
    intro: tuple[str, ...] = ()
    outro: tuple[str, ...] = ()
    path: str = ""
    places: tuple[Place, ...] = field(default=(), compare=False)  # of every spoken text
    language_where: Where | None = field(default=None, compare=False)  # None: not written
