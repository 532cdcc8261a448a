"""Lengths as people write them (`30s`, `2m30s`, `1:30`, `2m..2m30s`) to whole milliseconds."""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal

from coachtrack.errors import cut
from coachtrack.model import DurationRange

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_HOURS = r"(?:hours|hour|hrs|hr|h)"
_MINUTES = r"(?:minutes|minute|mins|min|m)"
_SECONDS = r"(?:seconds|second|secs|sec|s)"
_WITH_UNITS = re.compile(
    rf"(?:(?P<h>{_NUMBER})\s*{_HOURS})?\s*"
    rf"(?:(?P<m>{_NUMBER})\s*{_MINUTES})?\s*"
    rf"(?:(?P<s>{_NUMBER})\s*{_SECONDS})?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"(?:(?P<h>\d+):(?=[0-5]\d:))?(?P<m>\d+):(?P<s>[0-5]\d(?:\.\d+)?)")
_BARE = re.compile(_NUMBER)
# Long enough for any sensible duration, short enough that no number grows huge.
_MAX_CHARS = 40
_HINT = "write e.g. 30s, 2m, 2m30s, 1:30, 1.5m, 1h or a number of seconds"


def parse_duration_ms(value: str | int | float) -> int:
    """A duration (`30s`, `2m30s`, `1:30`, `1.5m`, `1h`, or seconds) in whole milliseconds."""
    seconds = _seconds(value)
    ms = int((seconds * 1000).to_integral_value(rounding=ROUND_HALF_UP))
    if ms <= 0:
        raise ValueError(f"{_quoted(value)} must be longer than zero")
    return ms


def parse_range(value: str | int | float) -> DurationRange:
    """A duration or a range `A..B` (A <= B) as a DurationRange."""
    if isinstance(value, str) and ".." not in value and (meant := _range_meant(value)):
        raise ValueError(f"{_quoted(value)} is not a duration; a range is written {meant}")
    if not isinstance(value, str) or ".." not in value:
        ms = parse_duration_ms(value)
        return DurationRange(shortest_ms=ms, longest_ms=ms)
    parts = value.split("..")
    # "10s...20s" splits into "10s" and ".20s" (a fifth of a second): not what was meant.
    if "..." in value or len(parts) != 2 or not all(part.strip() for part in parts):
        raise ValueError(f"{_quoted(value)} is not a range; write it as A..B, e.g. 2m..2m30s")
    shortest_ms, longest_ms = (parse_duration_ms(part.strip()) for part in parts)
    if shortest_ms > longest_ms:
        raise ValueError(f"{_quoted(value)} must go from shorter to longer")
    return DurationRange(shortest_ms=shortest_ms, longest_ms=longest_ms)


_OTHER_DASH = re.compile(r"\s*(?:-|–|—|\bto\b|\bbis\b)\s*", re.IGNORECASE)


def _range_meant(text: str) -> str | None:
    """`A..B` for a range written another way (`30s - 1m`, `30-60s`, `1 to 2m`), else None."""
    parts = _OTHER_DASH.split(text.strip())
    if len(parts) != 2 or not all(parts):
        return None
    low, high = parts
    if _BARE.fullmatch(low) and (unit := re.search(r"[a-z]+$", high, re.IGNORECASE)):
        low += unit.group()  # "30-60s": the unit written once stands for both
    try:
        if _seconds_or_none(low) is None or _seconds_or_none(high) is None:
            return None
    except ValueError:  # "1m90s-2m": what it says of the whole is said as before
        return None
    return f"{low}..{high}"


def _seconds(value: str | int | float) -> Decimal:
    """The number of seconds written in `value`, exactly."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{_quoted(value)} is not a duration; {_HINT}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{_quoted(value)} is not a duration; {_HINT}")
        return Decimal(repr(value))
    return _seconds_from_text(value)


def _seconds_from_text(value: str) -> Decimal:
    """Seconds from a written duration, or a ValueError saying how to write one."""
    text = value.strip()
    if len(text) > _MAX_CHARS:
        raise ValueError(f"{_quoted(value)} is not a duration; {_HINT}")
    if text.startswith("-") and _seconds_or_none(text[1:].strip()) is not None:
        raise ValueError(f"{_quoted(value)} must be longer than zero")
    seconds = _seconds_or_none(text)
    if seconds is None:
        raise ValueError(f"{_quoted(value)} is not a duration; {_HINT}")
    return seconds


def _seconds_or_none(text: str) -> Decimal | None:
    """Seconds from one of the written forms, or None when it is none of them."""
    if not text:
        return None
    if _BARE.fullmatch(text):
        return Decimal(text)
    match = _CLOCK.fullmatch(text) or _WITH_UNITS.fullmatch(text)
    if match is None or not any(match.groupdict().values()):
        return None
    parts = match.groupdict()
    for unit, larger, limit in (("s", ("h", "m"), "seconds"), ("m", ("h",), "minutes")):
        if parts[unit] and any(parts[u] for u in larger) and Decimal(parts[unit]) >= 60:
            # As `1:75` is no time of day, `1m90s` is most likely a slip (for 1m09s? 1m30s?)
            raise ValueError(
                f"{_quoted(text)} is not a duration: its {limit} must be under 60 after a "
                f"larger unit; {_HINT}"
            )
    return sum(
        (Decimal(parts[name] or 0) * scale for name, scale in (("h", 3600), ("m", 60), ("s", 1))),
        Decimal(0),
    )


def _quoted(value: object) -> str:
    """The value as the user wrote it, in double quotes, on one line, cut short when long."""
    return f'"{cut(str(value), _MAX_CHARS)}"'
