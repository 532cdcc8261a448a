"""Decode a music file for the bed under a track."""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from coachtrack import tools
from coachtrack.errors import BuildError, Problem, UserError

MAX_MUSIC_BYTES = 200 * 1024 * 1024
MIN_MUSIC_SECONDS = 1.0
_READ_BYTES = 1 << 20  # the decoder's output is taken this much at a time
_CLEAN_SAMPLES = 1 << 20  # samples cleaned at a time, so the masks for it stay small


def _refuse(path: Path, message: str) -> UserError:
    return UserError([Problem(path=str(path), message=message, key="--music")])


def check_music_file(path: Path) -> None:
    """A UserError unless `path` is a music file of a size we read (its sound is not looked at)."""
    if not path.is_file():
        raise _refuse(path, "no such music file")
    if path.stat().st_size > MAX_MUSIC_BYTES:
        raise _refuse(path, f"music file over {MAX_MUSIC_BYTES // 2**20} MB")


def load_music(path: Path, rate: int, max_seconds: float | None = None) -> npt.NDArray[np.float32]:
    """The file's audio as mono float32 at `rate` (mp3, wav, ogg, m4a: whatever ffmpeg reads).

    With `max_seconds`, only the file's first `max_seconds` are decoded: a bed never
    plays past the end of its track, so that is all the longest track under it can
    use. An hour-long mix under a half-minute track then costs half a minute of samples.

    Samples that are not numbers (NaN, infinity) become silence; the rest are clipped
    to full scale. A BuildError if there is not memory enough to hold the decoded sound.
    """
    check_music_file(path)
    limit = None if max_seconds is None else max(1, math.ceil(max_seconds * rate))
    # The decoder stops a second past the limit; the samples are counted exactly here.
    args = _decoder(path, rate, None if limit is None else limit / rate + 1)
    try:
        raw, status, errors = _decode(args, None if limit is None else limit * 4)
        if status != 0:
            raise _undecodable(path, errors)
        audio = np.frombuffer(raw, dtype=np.float32)  # the same memory, writable
        _silence_non_finite_and_clip(audio)
        sounds = np.any(audio)
    except MemoryError:
        raise BuildError(
            f"{path}: not enough memory to decode this music file (a shorter one may fit)"
        ) from None
    if len(audio) < MIN_MUSIC_SECONDS * rate and (limit is None or len(audio) < limit):
        raise _refuse(path, _NO_SOUND)
    if not sounds:
        if limit is not None and len(audio) == limit:  # it may sound later, past the track
            seconds = math.ceil(limit / rate)
            raise _refuse(path, f"the music file holds no sound in its first {seconds} s, "
                                "all that the track plays of it")  # fmt: skip
        raise _refuse(path, _NO_SOUND)
    return audio


def probe_music(path: Path, rate: int) -> None:
    """A UserError unless `path` is a music file ffmpeg decodes: `check_music_file`, then
    the file's first second decoded, in one short call.

    The command checks this with its other problems, before any speech is made: the whole
    decode (`load_music`) waits for the tracks' lengths, after planning, and a file that
    was no music was refused only then, once all the speech had been synthesized.
    """
    check_music_file(path)
    raw, status, errors = _decode(_decoder(path, rate, _PROBE_SECONDS), None)
    if status != 0:
        raise _undecodable(path, errors)
    if not raw:  # no samples at all: `load_music` would refuse it as holding no sound
        raise _refuse(path, _NO_SOUND)


_NO_SOUND = "the music file holds no sound (or less than a second of it)"
_PROBE_SECONDS = 1.0


def _decoder(path: Path, rate: int, seconds: float | None) -> list[str]:
    """The ffmpeg call that writes the file's sound, mono float32 at `rate`, to its stdout:
    its first `seconds`, or all of it."""
    # fmt: off
    args = [
        tools.ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error",
        "-i", f"file:{path}", "-map", "0:a:0", "-vn",
        "-ac", "1", "-ar", str(rate), "-f", "f32le", "pipe:1",
    ]
    # fmt: on
    if seconds is not None:
        args[-1:-1] = ["-t", f"{seconds:.3f}"]
    return args


def _undecodable(path: Path, errors: bytes) -> UserError:
    """The refusal of a file the decoder failed on, with the last of its reasons."""
    detail = errors.decode("utf-8", "replace").strip().splitlines()
    return _refuse(path, "cannot decode this music file" + (f": {detail[-1]}" if detail else ""))


def _decode(args: list[str], limit_bytes: int | None) -> tuple[bytearray, int, bytes]:
    """Run the decoder: its output (up to `limit_bytes`), exit status and complaints.

    The output is gathered in one growing buffer, not as pieces joined at the end (that
    held the sound twice), and its complaints go to a file: a damaged file can fill a
    pipe with them, and a decoder blocked on a full pipe would never finish.
    """
    raw = bytearray()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors)
        stdout = process.stdout
        assert stdout is not None
        try:
            # Read to the end, keeping what is wanted: a decoder left writing to a full
            # pipe would never exit.
            for chunk in iter(lambda: stdout.read(_READ_BYTES), b""):
                if limit_bytes is None or len(raw) < limit_bytes:
                    raw += chunk
            status = process.wait()
        except BaseException:  # out of memory, Ctrl-C: the decoder goes too
            process.kill()
            process.wait()
            raise
        finally:
            stdout.close()
        errors.seek(0)
        complaints = errors.read()
    if limit_bytes is not None:
        del raw[limit_bytes:]
    del raw[len(raw) // 4 * 4 :]  # whole samples only
    return raw, status, complaints


def _silence_non_finite_and_clip(audio: npt.NDArray[np.float32]) -> None:
    """Make samples that are not numbers silent and clip the rest to [-1, 1], in place.

    A NaN passed the clip and poisoned the track's loudness (the build failed with a
    traceback); an infinity was clipped to a full-scale click, and the resampler turns
    it into NaNs around it anyway. Such samples are silenced rather than the file refused:
    a float WAV with a few bad samples (a glitch from an editor or a plug-in) plays in
    every player, so the user expects it to play here too, and could hardly find the
    samples to mend them.
    """
    for start in range(0, len(audio), _CLEAN_SAMPLES):
        part = audio[start : start + _CLEAN_SAMPLES]
        part[~np.isfinite(part)] = 0.0
        np.clip(part, -1.0, 1.0, out=part)
