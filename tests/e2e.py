"""Helpers for end-to-end tests: run the real CLI, decode what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

RATE = 22050


def run_cli(*args: str, cache: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`coachtrack ARGS` in a fresh process, as a user would run it."""
    env = {**os.environ, "COACHTRACK_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "coachtrack", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600, check=False,
    )  # fmt: skip


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


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) as ffmpeg's ebur128 filter measures them."""
    err = subprocess.run(
        ["ffmpeg", "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    summary = err[err.rindex("Summary:") :]
    lufs = float(summary.split("I:")[1].split("LUFS")[0])
    peak = float(summary.split("Peak:")[1].split("dBFS")[0])
    return lufs, peak


def samples(ms: float) -> int:
    """Milliseconds to samples at 22050 Hz."""
    return round(ms * RATE / 1000)


def onset(pcm: np.ndarray, near: int, *, search: int, threshold: int = 300) -> int:
    """First sample at or after `near - search` whose level passes `threshold`."""
    lo = max(0, near - search)
    hits = np.flatnonzero(np.abs(pcm[lo : near + search].astype(np.int32)) > threshold)
    assert len(hits), f"no sound near sample {near}"
    return lo + int(hits[0])
