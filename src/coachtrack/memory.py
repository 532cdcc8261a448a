"""Giving freed memory back to the system, so a long build stays small."""

from __future__ import annotations

import contextlib
import sys


def hand_back() -> None:
    """Return the memory freed so far to the system (glibc would keep it otherwise).

    A long track's sounds are arrays of 100 KB and more, made and freed by the
    thousand. glibc serves most of them from its heap, and the pages they leave free
    stay with the process until trimmed: 30 MB on a 3-hour track. Trimming between
    stages costs milliseconds; making every large block a mapping of its own (a fixed
    mmap threshold) would cost a second of page faults on a 30-minute track.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
