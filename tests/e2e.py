"""Helpers for end-to-end tests: run the real CLI, decode what it wrote."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from bench.levels import ebur128 as ebur128  # the same measure as `python -m bench.levels`

RATE = 22050


def run_cli(*args: str, cache: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`coachtrack ARGS` in a fresh process, as a user would run it."""
    env = {**os.environ, "COACHTRACK_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "coachtrack", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600, check=False,
    )  # fmt: skip


def _ctrl_c_reaches_it() -> None:
    # A job started with `&` by a non-interactive shell (a CI script, say) ignores
    # SIGINT, and so would everything it starts: Python then never raises
    # KeyboardInterrupt. A terminal's foreground job gets Ctrl-C; so do these.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


FOREGROUND_JOB: dict[str, Any] = {"start_new_session": True, "preexec_fn": _ctrl_c_reaches_it}
"""Popen options for a process run as a shell runs a foreground job, in its own group."""


@contextlib.contextmanager
def killed_at_the_end(proc: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """A process started in its own session: its whole group is killed if still running."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def decode(path: Path) -> np.ndarray:
    """The track as mono int16 samples at 22050 Hz, decoded by ffmpeg."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(RATE),
         "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.int16)


def ffprobe_chapters(path: Path) -> list[dict[str, object]]:
    """Chapters as ffprobe lists them."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return list(json.loads(out)["chapters"])


def samples(ms: float) -> int:
    """Milliseconds to samples at 22050 Hz."""
    return round(ms * RATE / 1000)


def onset(pcm: np.ndarray, near: int, *, search: int, threshold: int = 300) -> int:
    """First sample at or after `near - search` whose level passes `threshold`."""
    lo = max(0, near - search)
    hits = np.flatnonzero(np.abs(pcm[lo : near + search].astype(np.int32)) > threshold)
    assert len(hits), f"no sound near sample {near}"
    return lo + int(hits[0])
