"""Decode a music file for the bed under a track."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt

from coachtrack import tools
from coachtrack.errors import Problem, UserError

MAX_MUSIC_BYTES = 200 * 1024 * 1024
MIN_MUSIC_SECONDS = 1.0


def _refuse(path: Path, message: str) -> UserError:
    return UserError([Problem(path=str(path), message=message, key="--music")])


def check_music_file(path: Path) -> None:
    """A UserError unless `path` is a music file of a size we read (its sound is not looked at)."""
    if not path.is_file():
        raise _refuse(path, "no such music file")
    if path.stat().st_size > MAX_MUSIC_BYTES:
        raise _refuse(path, f"music file over {MAX_MUSIC_BYTES // 2**20} MB")


def load_music(path: Path, rate: int) -> npt.NDArray[np.float32]:
    """The file's audio as mono float32 at `rate` (mp3, wav, ogg, m4a: whatever ffmpeg reads)."""
    check_music_file(path)
    # fmt: off
    args = [
        tools.ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error",
        "-i", f"file:{path}", "-map", "0:a:0", "-vn",
        "-ac", "1", "-ar", str(rate), "-f", "f32le", "pipe:1",
    ]
    # fmt: on
    result = subprocess.run(args, capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _refuse(path, "cannot decode this music file" + (f": {detail[-1]}" if detail else ""))
    audio = np.frombuffer(result.stdout, dtype=np.float32)
    if len(audio) < MIN_MUSIC_SECONDS * rate or not np.any(audio):
        raise _refuse(path, "the music file holds no sound (or less than a second of it)")
    return np.clip(audio, -1.0, 1.0)
