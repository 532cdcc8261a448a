"""Decode a music file for the bed under a track."""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

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
    if path.is_dir():
        raise _refuse(path, "is a folder; name a music file")
    if not path.exists():
        raise _refuse(path, "no such music file")
    if not path.is_file():
        raise _refuse(path, "is not a regular file; name a music file")
    size = path.stat().st_size
    if size == 0:
        raise _refuse(path, "the music file is empty")
    if size > MAX_MUSIC_BYTES:
        raise _refuse(path, f"music file over {MAX_MUSIC_BYTES // 2**20} MB")


class DecodedMusic:
    """A music file's sound, mono float32, in an unnamed temporary file, read a stretch at a
    time (`MusicSource`): an hour of it is 317 MB of samples, which a build held in memory
    (1.3 GB for a 3-hour track over an hour-long mix). Forked workers read it too; the
    file goes when the last process holding it does, and has no name to leave behind."""

    def __init__(self, file: BinaryIO, length: int) -> None:
        self._file = file
        self._length = length

    def __len__(self) -> int:
        return self._length

    def read(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        """Samples `[start, stop)` of the music (cut to its length), read straight into
        the array that holds them."""
        start, stop = max(0, start), min(self._length, stop)
        out = np.empty(max(0, stop - start), dtype=np.float32)
        view, done = memoryview(out.data).cast("B"), 0
        while done < len(view):  # a regular file reads whole; a short read is taken again
            got = os.preadv(self._file.fileno(), [view[done:]], start * 4 + done)
            if not got:
                raise BuildError("the decoded music file was cut short while the build read it")
            done += got
        return out


def load_music(
    path: Path, rate: int, max_seconds: float | None = None, *, folder: Path | None = None
) -> DecodedMusic:
    """The file's audio as mono float32 at `rate` (mp3, wav, ogg, m4a: whatever ffmpeg reads),
    kept in an unnamed temporary file in `folder` (the outputs' folder, so on disk where they
    go; the system's temporary folder by default).

    With `max_seconds`, only the file's first `max_seconds` are decoded: a bed never
    plays past the end of its track, so that is all the longest track under it can
    use. An hour-long mix under a half-minute track then costs half a minute of samples.

    Samples that are not numbers (NaN, infinity) become silence; the rest are clipped
    to full scale.
    """
    check_music_file(path)
    limit = None if max_seconds is None else max(1, math.ceil(max_seconds * rate))
    # The decoder stops a second past the limit; the samples are counted exactly here.
    args = _decoder(path, rate, None if limit is None else limit / rate + 1)

    def cannot_keep(error: OSError) -> BuildError:
        return BuildError(
            f"{path}: cannot keep the decoded music in {folder or tempfile.gettempdir()}: "
            f"{error.strerror or error}"
        )

    try:
        file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (it outlives this call)
    except OSError as error:
        raise cannot_keep(error) from None
    kept = _Kept(file, limit, cannot_keep)
    try:
        try:
            status, errors = _decode(args, kept.take)
            kept.flush()  # read back with os.pread, under the file object's buffer
        except MemoryError:
            raise BuildError(
                f"{path}: not enough memory to decode this music file (a shorter one may fit)"
            ) from None
        if status != 0:
            raise _undecodable(path, errors)
        length = kept.samples
        if length < MIN_MUSIC_SECONDS * rate and (limit is None or length < limit):
            raise _refuse(path, _NO_SOUND)
        if not kept.sounds:
            if limit is not None and length == limit:  # it may sound later, past the track
                seconds = math.ceil(limit / rate)
                raise _refuse(path, f"the music file holds no sound in its first {seconds} s, "
                                    "all that the track plays of it")  # fmt: skip
            raise _refuse(path, _NO_SOUND)
    except BaseException:
        file.close()
        raise
    return DecodedMusic(file, length)


class _Kept:
    """The decoder's output as it comes, cleaned and written to `file`, up to `limit`
    samples; what is left over is read and dropped."""

    def __init__(
        self, file: BinaryIO, limit: int | None, failed: Callable[[OSError], BuildError]
    ) -> None:
        self.file, self.limit, self.failed = file, limit, failed
        self.samples = 0
        self.sounds = False
        self._partial = b""  # the start of a sample cut off at the end of a chunk

    def flush(self) -> None:
        try:
            self.file.flush()
        except OSError as error:  # a full disk
            raise self.failed(error) from None

    def take(self, chunk: bytes) -> None:
        data = bytearray(self._partial)
        data += chunk
        whole = len(data) // 4
        self._partial = bytes(data[whole * 4 :])
        room = whole if self.limit is None else max(0, self.limit - self.samples)
        audio = np.frombuffer(data, dtype=np.float32, count=min(whole, room))  # writable
        if not len(audio):
            return
        _silence_non_finite_and_clip(audio)
        self.sounds = self.sounds or bool(np.any(audio))
        try:
            self.file.write(audio.data)
        except OSError as error:  # a full disk
            raise self.failed(error) from None
        self.samples += len(audio)


def probe_music(path: Path, rate: int) -> None:
    """A UserError unless `path` is a music file ffmpeg decodes: `check_music_file`, then
    the file's first second decoded, in one short call.

    The command checks this with its other problems, before any speech is made: the whole
    decode (`load_music`) waits for the tracks' lengths, after planning, and a file that
    was no music was refused only then, once all the speech had been synthesized.
    """
    check_music_file(path)
    raw = bytearray()
    status, errors = _decode(_decoder(path, rate, _PROBE_SECONDS), raw.extend)
    if status != 0:
        raise _undecodable(path, errors)
    # Under a second of it in all: `load_music` would refuse it, as every track is longer
    # (refused only then, it left the output folder made and the speech spoken for nothing).
    if len(raw) // 4 < MIN_MUSIC_SECONDS * rate:
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
    if any("matches no streams" in line for line in detail):  # ffmpeg's words for `-map 0:a:0`
        return _refuse(path, "the file has no sound in it to play (no audio stream)")
    return _refuse(path, "cannot decode this music file" + (f": {detail[-1]}" if detail else ""))


def _decode(args: list[str], take: Callable[[bytes], None]) -> tuple[int, bytes]:
    """Run the decoder, handing its output to `take` as it comes: its exit status and
    complaints.

    Its complaints go to a file: a damaged file can fill a pipe with them, and a decoder
    blocked on a full pipe would never finish.
    """
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors)
        stdout = process.stdout
        assert stdout is not None
        try:
            # Read to the end: a decoder left writing to a full pipe would never exit.
            for chunk in iter(lambda: stdout.read(_READ_BYTES), b""):
                take(chunk)
            status = process.wait()
        except BaseException:  # a full disk, Ctrl-C: the decoder goes too
            process.kill()
            process.wait()
            raise
        finally:
            stdout.close()
        errors.seek(0)
        complaints = errors.read()
    return status, complaints


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
