"""PCM chunks -> MP3 / M4A / WAV with tags and chapters, plus the LRC and M3U8 beside them.

Every file appears whole or not at all: it is written to a dot-prefixed temporary
file in the destination folder and moved onto its name with `os.replace` only
once complete. The track is streamed: chunks go straight to the encoder and are
never joined.

MP3 is encoded with LAME (lameenc), only around the sound, in worker processes on all
cores: see "MP3 from LAME islands" below. `COACHTRACK_ENCODER=ffmpeg` encodes the whole
stream with ffmpeg's libmp3lame instead, as before; rates and bitrates outside MPEG-2
always go that way.
"""

# mutagen's classes carry no type hints, and calling them is what this module is for.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import contextlib
import functools
import gc
import io
import itertools
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import wave
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Literal, NamedTuple, NoReturn

import lameenc
import numpy as np
import numpy.typing as npt
from mutagen.id3 import (
    CHAP,
    COMM,
    CTOC,
    ID3,
    TALB,
    TCON,
    TIT2,
    TLAN,
    TPE1,
    USLT,
    CTOCFlags,
    Encoding,
)
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4

from coachtrack import files, loudness, tools
from coachtrack.errors import STOPS, BuildError
from coachtrack.files import temp_beside as _temp_beside
from coachtrack.tools import ffmpeg_path

TrackFormat = Literal["mp3", "m4a", "wav"]
ENCODER_ENV = tools.ENCODER_ENV
TRACK_SUFFIXES = (".mp3", ".m4a", ".wav")
ARTIST = "coachtrack"
PLAYLIST_NAME = files.PLAYLIST_NAME

# ISO 639-1 (routine files) -> ISO 639-2/T (ID3 and MP4 language fields).
_ISO_639_2: Mapping[str, str] = MappingProxyType(
    {
        "cs": "ces",
        "da": "dan",
        "de": "deu",
        "en": "eng",
        "es": "spa",
        "fi": "fin",
        "fr": "fra",
        "it": "ita",
        "ja": "jpn",
        "nl": "nld",
        "no": "nor",
        "pl": "pol",
        "pt": "por",
        "ru": "rus",
        "sv": "swe",
        "tr": "tur",
        "zh": "zho",
    }
)

# AAC frames are 1024 samples and ffmpeg's decoder does not trim the last one to the
# edit list, so at 22.05 kHz a decoded M4A could run up to 46 ms long; at 44.1 kHz
# it stays under 24 ms, inside the 30 ms the contract allows.
# How much quieter each format decodes than the PCM it was fed, measured here: LAME's
# quantizer shaves a steady ~0.45 dB off at 64-96 kbps and 22.05 kHz, ffmpeg's fast AAC
# coder 0.1-0.4 dB. Mastering aims that much higher so the file, not the PCM, meets the
# loudness target.
LEVEL_LOSS_DB: dict[str, float] = {"mp3": 0.45, "m4a": 0.2, "wav": 0.0}
_AAC_SAMPLE_RATE = 44100
_STDERR_TAIL_LINES = 5
_STDERR_TAIL_BYTES = 16 * 1024
_COPY_BUFFER_BYTES = 1 << 20
_HEADER_BYTES = 4096  # more than the first MP3 frame holds


@dataclass(frozen=True, slots=True)
class Chapter:
    """A named span of the track, in milliseconds."""

    title: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """Everything written into a track's tags besides the audio."""

    title: str  # ID3 title
    album: str  # the profile's name, e.g. "phone"
    genre: str  # e.g. "Fitness"
    comment: str  # source and safety note
    language: str  # ISO 639-1, "en" / "de"
    duration_ms: int
    chapters: tuple[Chapter, ...]
    transcript: tuple[tuple[int, str], ...]  # (start_ms, spoken text), in order


class TrackSummary(NamedTuple):
    """What a written track says about itself, read back from its tags."""

    title: str
    duration_ms: int
    chapters: tuple[Chapter, ...]


# --- public API ---------------------------------------------------------------------


def write_track(
    path: Path,
    chunks: Iterable[npt.NDArray[np.int16]],
    *,
    n_samples: int,
    sample_rate: int,
    info: TrackInfo,
    fmt: TrackFormat = "mp3",
    bitrate_kbps: int = 64,
    true_peak_dbtp: float | None = None,
    then: Callable[[files.Written], object] | None = None,
    again: Callable[[float], Iterable[npt.NDArray[np.int16]]] | None = None,
) -> files.Written:
    """Encode mono int16 chunks (n_samples in all) into a tagged track at `path`, atomically.

    With `true_peak_dbtp`, an MP3 made of LAME islands decodes under that ceiling
    (see "The true-peak check" below); other formats are written as they come. An
    island too long to keep for that check (a music bed under the whole track) needs
    `again`: `again(gain)` gives the same chunks once more, times `gain` (under 1).
    Without it, such an island is written as it comes.
    Returns what was written (its digest, and which file it is), to tell it from
    what another writer of `path` may put there after. `then` (writing the files that
    go with the track) runs right after the track is in place, with Ctrl-C held off
    until it is done: a new track never stays beside the old track's LRC.
    """
    if n_samples <= 0 or sample_rate <= 0 or bitrate_kbps <= 0:
        raise ValueError(f"bad track parameters: {n_samples=}, {sample_rate=}, {bitrate_kbps=}")
    path = Path(path)
    with _temp_beside(path) as tmp:
        if fmt == "wav":
            _write_wav(tmp, chunks, n_samples=n_samples, sample_rate=sample_rate)
            _add_wav_info(tmp, info)
        elif fmt == "mp3":
            _write_mp3(
                tmp,
                chunks,
                n_samples=n_samples,
                sample_rate=sample_rate,
                info=info,
                bitrate_kbps=bitrate_kbps,
                final=path,
                true_peak_dbtp=true_peak_dbtp,
                again=again,
            )
        elif fmt == "m4a":
            _write_m4a(
                tmp,
                chunks,
                n_samples=n_samples,
                sample_rate=sample_rate,
                info=info,
                bitrate_kbps=bitrate_kbps,
                final=path,
            )
        else:
            raise ValueError(f"unknown track format {fmt!r}")
        _fsync(tmp)
        written = files.Written.of(tmp)
        with files.stops_held():
            os.replace(tmp, path)
            if then is not None:
                then(written)
    return written


def lrc_text(info: TrackInfo) -> str:
    """The transcript as LRC: a header, then one `[mm:ss.xx]text` line per entry."""
    lines = [
        f"[ti:{_one_line(info.title)}]",
        f"[ar:{ARTIST}]",
        f"[al:{_one_line(info.album)}]",
        f"[length: {_mm_ss(_round_seconds(info.duration_ms))}]",
    ]
    lines += [f"[{_lrc_time(start_ms)}]{_one_line(text)}" for start_ms, text in info.transcript]
    return "\n".join(lines) + "\n"


def write_lrc(path: Path, info: TrackInfo, *, header: str = "") -> None:
    """Write the transcript as an LRC file beside the track, atomically.

    `header`: lines to put first (a build's fingerprint).
    """
    files.write_text(Path(path), header + lrc_text(info))


def write_playlist(folder: Path) -> None:
    """Write `playlist.m3u8` listing every track in `folder`, by file name, atomically."""
    folder = Path(folder)
    tracks = sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix.lower() in TRACK_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    lines = ["#EXTM3U"]
    for name in tracks:
        lines += [_extinf(folder / name), _path_line(name)]
    files.write_text(folder / PLAYLIST_NAME, "\n".join(lines) + "\n")


def _extinf(track: Path) -> str:
    """A track's `#EXTINF` line: its length in seconds (-1 if unreadable) and title."""
    summary = summary_or_fallback(track)
    seconds = -1 if summary.duration_ms < 0 else _round_seconds(summary.duration_ms)
    return f"#EXTINF:{seconds},{_one_line(summary.title)}"


def _path_line(name: str) -> str:
    """A track's line in a playlist: its file name, as `./#name` if it starts with `#`
    (players read a line that starts with `#` as a comment or a directive)."""
    return f"./{name}" if name.startswith("#") else name


def add_to_playlist(track: Path) -> None:
    """List `track` in its folder's playlist, leaving every other line of it as it was.

    For a track written into a folder coachtrack does not keep (`mix --out FILE`): a
    playlist already there may be the user's own. Without one, a new one lists this
    track alone (the folder's other files may be anything: music, scratch recordings).
    """
    playlist = track.parent / PLAYLIST_NAME
    try:
        lines = playlist.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = ["#EXTM3U"]
    except UnicodeDecodeError:  # not one we could have written: leave it whole
        return
    entry, path_line = _extinf(track), _path_line(track.name)
    if path_line in lines:
        at = lines.index(path_line)
        if at > 0 and lines[at - 1].startswith("#EXTINF:"):
            lines[at - 1] = entry
        else:
            lines.insert(at, entry)
    else:
        lines += [entry, path_line]
    files.write_text(playlist, "\n".join(lines) + "\n")


def read_track_info(path: Path) -> TrackSummary:
    """Read a track's title, length and chapters back from its tags (mp3, m4a or wav)."""
    path = Path(path)
    suffix = path.suffix.lower()  # `mix --out Session.MP3` is taken as asked
    if suffix == ".mp3":
        return _read_mp3(path)
    if suffix == ".m4a":
        return _read_m4a(path)
    if suffix == ".wav":
        with wave.open(str(path), "rb") as w:
            duration_ms = _ms(w.getnframes(), w.getframerate())
        return TrackSummary(_wav_title(path) or path.stem, duration_ms, ())
    raise ValueError(f"{path}: not a track file ({', '.join(TRACK_SUFFIXES)})")


def summary_or_fallback(path: Path) -> TrackSummary:
    """The track's tags, or its file stem and an unknown length (-1) if they cannot be read."""
    try:
        return read_track_info(path)
    except Exception:  # a damaged track must not stop the playlist or the index
        return TrackSummary(path.stem, -1, ())


# --- formats ------------------------------------------------------------------------


def _write_wav(
    tmp: Path, chunks: Iterable[npt.NDArray[np.int16]], *, n_samples: int, sample_rate: int
) -> None:
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.setnframes(n_samples)
        sent = 0
        for chunk in chunks:
            pcm = _pcm(chunk)
            w.writeframesraw(pcm)
            sent += len(pcm) // 2
    _check_count(sent, n_samples)


# RIFF INFO tags a WAV carries (players, ffmpeg and our playlist read its title).
_WAV_INFO = {"INAM": "title", "IPRD": "album", "IGNR": "genre", "ICMT": "comment"}


def _add_wav_info(tmp: Path, info: TrackInfo) -> None:
    """Append a LIST/INFO chunk (title, artist, album, genre, comment) to a written WAV."""
    fields = {key: getattr(info, name) for key, name in _WAV_INFO.items()} | {"IART": ARTIST}
    body = b"INFO"
    for key, text in fields.items():
        data = text.encode("utf-8") + b"\0"
        body += key.encode("ascii") + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)
    with open(tmp, "r+b") as stream:
        stream.seek(0, os.SEEK_END)
        stream.write(b"LIST" + struct.pack("<I", len(body)) + body)
        riff_size = stream.tell() - 8
        stream.seek(4)
        stream.write(struct.pack("<I", riff_size))


def _wav_title(path: Path) -> str | None:
    """The INAM tag of a WAV's LIST/INFO chunk, if it has one."""
    with open(path, "rb") as stream:
        head = stream.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while len(header := stream.read(8)) == 8:
            kind, size = header[:4], struct.unpack("<I", header[4:])[0]
            if kind != b"LIST" or size > 1 << 20:
                stream.seek(size + size % 2, os.SEEK_CUR)
                continue
            body = stream.read(size)
            at = 4 if body[:4] == b"INFO" else len(body)
            while at + 8 <= len(body):
                key, length = body[at : at + 4], struct.unpack("<I", body[at + 4 : at + 8])[0]
                if key == b"INAM":
                    text = body[at + 8 : at + 8 + length].split(b"\0", 1)[0]
                    return text.decode("utf-8", errors="replace") or None
                at += 8 + length + length % 2
    return None


def checks_true_peaks(fmt: TrackFormat, sample_rate: int, bitrate_kbps: int) -> bool:
    """Whether a track written so has its decoded true peaks checked, and an island over
    the ceiling encoded again (see "The true-peak check"): LAME islands, and a whole
    track written `again` where one is too long to keep (a music bed's). The others
    rest on mastering's ENCODER_MARGIN_DB alone."""
    return (
        fmt == "mp3"
        and tools.mp3_encoder() == "lame"
        and _Mp3Format(sample_rate, bitrate_kbps).islands_apply
    )


def _write_mp3(
    tmp: Path,
    chunks: Iterable[npt.NDArray[np.int16]],
    *,
    n_samples: int,
    sample_rate: int,
    info: TrackInfo,
    bitrate_kbps: int,
    final: Path,
    true_peak_dbtp: float | None,
    again: Callable[[float], Iterable[npt.NDArray[np.int16]]] | None,
) -> None:
    encoder = tools.mp3_encoder()
    stream = _Mp3Format(sample_rate, bitrate_kbps)
    if encoder == "lame" and stream.islands_apply:
        gain = 1.0
        for attempt in itertools.count():  # see "The true-peak check"
            try:
                _write_mp3_islands(
                    tmp,
                    chunks,
                    n_samples=n_samples,
                    stream=stream,
                    info=info,
                    final=final,
                    true_peak_dbtp=true_peak_dbtp,
                    check_whole=again is not None and attempt < _WHOLE_ATTEMPTS,
                )
                return
            except _OverCeiling as over:
                assert again is not None
                under_db = _CHECK_AIM_DB - TRUE_PEAK_ROOM_DB + _CHECK_STEP_DB * attempt
                gain *= over.ceiling / over.peak * loudness.db_to_gain(-under_db)
                chunks = again(gain)
    else:
        _write_mp3_ffmpeg(
            tmp,
            chunks,
            n_samples=n_samples,
            sample_rate=sample_rate,
            info=info,
            bitrate_kbps=bitrate_kbps,
            final=final,
        )


def _write_mp3_ffmpeg(
    tmp: Path,
    chunks: Iterable[npt.NDArray[np.int16]],
    *,
    n_samples: int,
    sample_rate: int,
    info: TrackInfo,
    bitrate_kbps: int,
    final: Path,
) -> None:
    # ffmpeg writes the bare stream (the Xing/LAME header needs a seekable file); the
    # tag goes in front of it in a second file rather than being inserted by mutagen,
    # which would map the whole file into memory to move it.
    with _temp_beside(final) as audio:
        # fmt: off
        args = [
            *_pcm_input(sample_rate),
            "-map_metadata", "-1",
            # The output rate spelled out: ffmpeg would otherwise resample to one LAME has.
            "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k", "-ar", str(sample_rate),
            "-fflags", "+bitexact", "-flags", "+bitexact",
            "-id3v2_version", "0", "-write_xing", "1",
            "-f", "mp3", f"file:{audio}",
        ]
        # fmt: on
        _run_ffmpeg(args, chunks, n_samples=n_samples, final=final)
        _finish_lame_header(audio, n_samples=n_samples, final=final)
        with tmp.open("wb") as out, audio.open("rb") as stream:
            out.write(_id3_tag(info))
            shutil.copyfileobj(stream, out, _COPY_BUFFER_BYTES)


def _write_m4a(
    tmp: Path,
    chunks: Iterable[npt.NDArray[np.int16]],
    *,
    n_samples: int,
    sample_rate: int,
    info: TrackInfo,
    bitrate_kbps: int,
    final: Path,
) -> None:
    with tempfile.TemporaryDirectory(prefix="coachtrack-") as scratch:
        metadata = Path(scratch) / "metadata.txt"
        metadata.write_text(_ffmetadata(info), encoding="utf-8")
        # fmt: off
        args = [
            *_pcm_input(sample_rate),
            "-f", "ffmetadata", "-i", f"file:{metadata}",
            "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1",
            "-c:a", "aac", "-b:a", f"{bitrate_kbps}k", "-ar", str(_AAC_SAMPLE_RATE),
            # The default "twoloop" coder's noise substitution throws spikes over 0 dBFS
            # on long speech tracks (+0.7 dBTP on a 31-minute one, from a -3.5 dBTP
            # input), and which ones depends on the last bit of the input; the "fast"
            # coder stays within 0.7 dB of the input's true peak, in half the time.
            "-aac_coder", "fast",
            "-metadata:s:a:0", f"language={_iso_639_2(info.language, unknown='und')}",
            # Only the muxer is bit-exact: the AAC encoder's bit-exact mode overshoots
            # true peaks by ~4.5 dB, and its normal mode is just as repeatable.
            "-fflags", "+bitexact",
            # The edit list then states the length to the sample, not to the millisecond.
            "-movie_timescale", str(_AAC_SAMPLE_RATE),
            "-movflags", "+faststart",
            "-f", "ipod", f"file:{tmp}",
        ]
        # fmt: on
        _run_ffmpeg(args, chunks, n_samples=n_samples, final=final)


# --- ffmpeg ---------------------------------------------------------------------------


def _pcm_input(sample_rate: int) -> list[str]:
    """ffmpeg's first input: the track as mono 16-bit samples on its stdin."""
    return ["-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0"]


def _run_ffmpeg(
    args: list[str],
    chunks: Iterable[npt.NDArray[np.int16]],
    *,
    n_samples: int,
    final: Path,
) -> None:
    """Run one ffmpeg call fed the chunks as raw PCM on stdin; raise BuildError if it fails."""
    command = [ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    # stderr goes to a file, not a pipe: nobody has to drain it while we write stdin.
    with tempfile.TemporaryFile() as stderr:
        # Its own process group keeps Ctrl-C from reaching ffmpeg first: we stop it ourselves.
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            process_group=0,
        )
        assert proc.stdin is not None
        try:
            sent = 0
            try:
                for chunk in chunks:
                    pcm = _pcm(chunk)
                    proc.stdin.write(pcm)
                    sent += len(pcm) // 2
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg quit early: its exit status and stderr say why
            returncode = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        if returncode != 0:
            raise BuildError(
                f"{final}: ffmpeg failed ({_describe_exit(returncode)}): {_tail(stderr)}"
            )
    _check_count(sent, n_samples)


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _tail(stream: IO[bytes]) -> str:
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - _STDERR_TAIL_BYTES))
    lines = stream.read().decode("utf-8", "replace").splitlines()
    tail = [line.strip() for line in lines if line.strip()][-_STDERR_TAIL_LINES:]
    return "; ".join(tail) or "no message"


# --- MP3 from LAME islands ------------------------------------------------------------
#
# A track is mostly digital silence, and an MPEG-2 layer III frame codes one granule of
# 576 samples. So LAME encodes only the "islands" of the track around its sounds, each
# with a fresh encoder, and one silent frame, repeated, fills the rest:
#
# - Frames splice: a fresh encoder's first frame starts its main data within itself
#   (main_data_begin 0), as does the silent frame, so no frame reaches back into the bit
#   reservoir of a frame from elsewhere; and the decoder's overlap across a splice is
#   zero, since the frames on both sides of it code silence.
# - Frame k decodes to the track's samples [576k - 1105, 576k - 529): LAME's delay of 576
#   samples, declared in the LAME tag, and every decoder's own 529. A fresh encoder fed
#   the track from sample 576m on writes frame m first, so its frames land in place.
#   Sound in granule g (samples [576g, 576g + 576)) shapes frames g - 1 to g + 2.
# - The encoders end up in the same state as one run over the whole track would be in:
#   LAME's adaptive hearing threshold falls to its floor within ~95 granules of silence
#   after loud sound, and within ~36 from where a fresh encoder starts it; its other
#   state lasts a granule or two. So sounds less than 112 silent granules (2.9 s) apart
#   share an island, and a fresh encoder runs through 48 silent granules or more before
#   the sound. Islands start on LAME's frame padding cycle (49 frames at 22.05 kHz), so
#   each frame has the room it would have in a whole-track encode, too.
# Measured on the shipped routines and on synthetic tracks, the islands decode to the
# very samples a whole-track encode (LAME's or ffmpeg's) gives, and a stretch of silence
# costs nothing but writing it. What LAME spends on the sound itself remains.

_LAME_QUALITY = 3  # LAME's default, and ffmpeg's: both write the same frames
_LSF_SAMPLE_RATES = frozenset({16_000, 22_050, 24_000})  # MPEG-2: one granule per frame
_LSF_BITRATES_KBPS = frozenset({8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160})
_GRANULE = 576
_ENCODER_DELAY = 576
_DECODER_DELAY = 529
_LEAD_FRAMES = 1  # sound in granule g reaches back to frame g - 1 (block switching) ...
_TAIL_FRAMES = 3  # ... and on to frame g + 2 (delay, overlap); an island keeps one more
_SETTLE_GRANULES = 112  # silence that separates islands: the whole-track encoder settles
_PREROLL_GRANULES = 48  # silence a fresh encoder runs through before the sound: it settles
_SIDE_INFO_BYTES = 9  # MPEG-2, mono
_INFO_FRAME_BYTES = 4 + _SIDE_INFO_BYTES + 120 + 36  # header, side info, Xing and LAME tags
_LAME_VENDOR = b"LAME3.100"
_ZERO_GRANULES = bytes(2 * _GRANULE * 64)
_SILENT_CYCLES = 16  # padding cycles of silence written at a time
_CRC_BLOCK_BYTES = 1 << 19
_CRC_LANES = 4096


@dataclass(frozen=True, slots=True)
class _Mp3Format:
    """A mono MP3 stream's sample rate and constant bitrate."""

    sample_rate: int
    bitrate_kbps: int

    @property
    def islands_apply(self) -> bool:
        """Whether LAME writes this as MPEG-2, one granule a frame, with room for the tags."""
        return (
            self.sample_rate in _LSF_SAMPLE_RATES
            and self.bitrate_kbps in _LSF_BITRATES_KBPS
            and self.frame_bytes >= _INFO_FRAME_BYTES
        )

    @property
    def frame_bytes(self) -> int:
        """An unpadded frame's size; padded frames have a byte more."""
        return 72_000 * self.bitrate_kbps // self.sample_rate

    @property
    def padding_period(self) -> int:
        """Frames in one cycle of the padding that keeps the bitrate exact."""
        return self.sample_rate // math.gcd(72_000 * self.bitrate_kbps, self.sample_rate)

    def frames_for(self, n_samples: int) -> int:
        """Audio frames needed for n_samples once both delays are skipped."""
        return -(-(n_samples + _ENCODER_DELAY + _DECODER_DELAY) // _GRANULE)

    def encoder(self) -> lameenc.Encoder:
        """A fresh LAME encoder for this stream."""
        encoder = lameenc.Encoder()
        encoder.set_channels(1)
        encoder.set_in_sample_rate(self.sample_rate)
        encoder.set_out_sample_rate(self.sample_rate)
        encoder.set_bit_rate(self.bitrate_kbps)
        encoder.set_quality(_LAME_QUALITY)
        encoder.silence()
        return encoder


@dataclass(frozen=True, slots=True)
class _Silence:
    """One padding cycle of silent frames, as LAME sizes and heads them."""

    cycle: bytes
    offsets: tuple[int, ...]  # of each frame in `cycle`, then its length
    headers: tuple[bytes, ...]  # each frame's 4-byte header

    @classmethod
    def of(cls, stream: _Mp3Format) -> _Silence:
        """The silent frames LAME writes for this stream, made independent of their neighbours."""
        period = stream.padding_period
        encoder = stream.encoder()
        data = bytes(encoder.encode(bytes(2 * _GRANULE * period))) + bytes(encoder.flush())
        frames, pos = [], 0
        for _ in range(period):
            size = stream.frame_bytes + _padding_bit(data, pos)
            frames.append(data[pos : pos + size])
            pos += size
        side_info = frames[0][4 : 4 + _SIDE_INFO_BYTES]
        if not _is_frame(data, 0) or side_info[0] != 0 or _part2_3_length(data, 0) != 0:
            raise RuntimeError("LAME's first frame of silence is not a plain silent frame")
        # The first frame's side info: no main data, and main data beginning in itself.
        silent = [f[:4] + side_info + bytes(len(f) - 4 - _SIDE_INFO_BYTES) for f in frames]
        offsets = [0]
        for frame in silent:
            offsets.append(offsets[-1] + len(frame))
        return cls(b"".join(silent), tuple(offsets), tuple(f[:4] for f in silent))

    def position(self, frame: int) -> int:
        """Where audio frame `frame` starts, in bytes from the first audio frame."""
        cycles, phase = divmod(frame, len(self.headers))
        return cycles * len(self.cycle) + self.offsets[phase]


class _Island:
    """A fresh LAME encoder fed the track from frame `start` on, and its frames not yet out."""

    def __init__(
        self, stream: _Mp3Format, silence: _Silence, *, start: int, keep: bool = False
    ) -> None:
        self.start = start
        self.fed = start  # granules [start, fed) have gone in
        self.taken = start  # frames [start, taken) have come out
        self.last_sound = start  # the last granule with sound in it
        self._stream = stream
        self._silence = silence
        self._encoder = stream.encoder()
        self._pending = bytearray()
        # What was fed, while `keep` and short enough to encode again (see `checked`).
        self.fed_sound: list[tuple[int, bytes]] | None = [] if keep else None
        self._kept_bytes = 0

    @property
    def checked(self) -> bool:
        """Whether its sound is kept, and its frames held back, until its true peak is known."""
        return self.fed_sound is not None

    def feed(self, granule: int, pcm: bytes) -> None:
        """Feed silence up to `granule`, then `pcm` (whole granules, 16-bit LE) from there on."""
        if self.fed_sound is not None and pcm:
            self._kept_bytes += len(pcm)
            if self._kept_bytes <= _CHECKED_ISLAND_BYTES:
                self.fed_sound.append((granule, pcm))
            else:
                self.fed_sound = None  # too long to hold: it streams, unchecked
        while self.fed < granule:
            count = min(granule - self.fed, len(_ZERO_GRANULES) // (2 * _GRANULE))
            self._pending += self._encoder.encode(_ZERO_GRANULES[: 2 * _GRANULE * count])
            self.fed += count
        if pcm:
            self._pending += self._encoder.encode(pcm)
            self.fed += len(pcm) // (2 * _GRANULE)

    def take(self, end: int) -> bytes:
        """The whole frames ready so far, up to (not including) frame `end` of the track."""
        # The island starts on LAME's padding cycle, so where each frame starts follows from
        # its number; the headers where the frames taken begin and end show that they do.
        pending, position = self._pending, self._silence.position
        first = position(self.taken)
        count = min(end - self.taken, len(pending) // self._stream.frame_bytes)
        while count and position(self.taken + count) - first > len(pending):
            count -= 1
        if not count:
            return b""
        size = position(self.taken + count) - first
        self._check_header(0, self.taken)
        if self.taken == self.start and pending[4] != 0:
            raise RuntimeError("a fresh encoder's first frame reaches into a bit reservoir")
        if len(pending) >= size + 4:
            self._check_header(size, self.taken + count)
        frames = bytes(pending[:size])
        del pending[:size]
        self.taken += count
        return frames

    def _check_header(self, pos: int, frame: int) -> None:
        headers = self._silence.headers
        if self._pending[pos : pos + 4] != headers[frame % len(headers)]:
            raise RuntimeError(f"LAME's frame {frame} is not where its padding cycle puts it")

    def finish(self, end: int) -> bytes:
        """Flush the encoder; its frames up to frame `end`, checking that those after are silent."""
        self.feed(end, b"")
        self._pending += self._encoder.flush()
        frames = self.take(end)
        if self.taken != end:
            raise RuntimeError(
                f"LAME wrote {self.taken - self.start} frames, not {end - self.start}"
            )
        pos = 0
        while _is_frame(self._pending, pos):
            # Cutting a frame that codes sound would lose it: the margins must cover it.
            if _part2_3_length(self._pending, pos) != 0:
                raise RuntimeError(f"sound reaches past frame {end}, where its island ends")
            pos += self._stream.frame_bytes + _padding_bit(self._pending, pos)
        return frames


def _island_end(last_sound: int, n_frames: int) -> int:
    """The frame where an island ends, given the last granule with sound in it."""
    return min(n_frames, last_sound + 1 + _TAIL_FRAMES)


# --- The true-peak check
#
# LAME's coding noise rides on the sound's peaks: the shipped routines decode 0.5 to 2 dB
# over the true peak of what was fed, so mastering aims ENCODER_MARGIN_DB under the
# ceiling. That is a margin, not a bound. So each island is decoded (libsndfile) as soon
# as it is encoded, in the process that encoded it, and its true peak measured; an island
# over the ceiling is encoded again from its sound, quieter, and measured again, until it
# decodes under it. LAME's noise does not fall in step with the gain (a square wave
# turned down 0.4 dB decoded 0.5 dB louder), so each attempt turns it down a step more
# than the one before. One island of speech turned down a fraction of a decibel is not
# heard; the rest of the track is left as it was. An island longer than the sound kept
# for this (a music bed makes the whole track one) streams, and the track is checked
# once written: decoded whole from the file, a few seconds at a time. Over the ceiling,
# the whole track is rendered and written again, quieter (`write_track`'s `again`); the
# attempts are measured as an island's are, and the last is kept as it comes.

TRUE_PEAK_ROOM_DB = 0.3  # an island decodes this far under the ceiling at least ...
_CHECK_AIM_DB = 0.5  # ... and one encoded again is aimed this far under it at first,
_CHECK_STEP_DB = 1.0  # ... then this much further under at each attempt after that
_CHECK_ATTEMPTS = 12  # the last is aimed over 60 dB under: no noise rides that high
_CHECKED_ISLAND_BYTES = 1 << 23  # sound kept for encoding again: 3 min 10 s at 22.05 kHz
_WHOLE_ATTEMPTS = 3  # a whole track is written at most this many times more


# Samples decoded at a time (3 s), so that the check holds little: whole frames, since
# libsndfile 1.2.2 decodes MP3 wrongly when asked for part of one (measured), and read
# in a loop, since its frame count for MP3 is an estimate that `blocks()` trusts.
_CHECK_BLOCK = 128 * _GRANULE


def _decoded(source: bytes | Path, *, trimmed: int = 0) -> Iterator[npt.NDArray[np.float32]]:
    """MPEG audio frames, or an MP3 file, as a decoder plays them, a few seconds at a time.

    `trimmed`: the samples the decoder leaves out at the start (a file's LAME tag has
    it skip both delays), so that each read still ends where a frame does.
    """
    import soundfile  # the decoder: libsndfile, which has mpg123 in its wheel

    file = io.BytesIO(source) if isinstance(source, bytes) else source
    with soundfile.SoundFile(file) as decoded:
        size = _CHECK_BLOCK - trimmed
        while len(block := decoded.read(size, dtype="float32")):
            yield block
            size = _CHECK_BLOCK


def _decoded_true_peak(source: bytes | Path, floor: float, *, trimmed: int = 0) -> float:
    """The true peak (linear) of MPEG audio frames, or an MP3 file, as a decoder plays them."""
    meter = loudness.TruePeakMeter(floor)
    for block in _decoded(source, trimmed=trimmed):
        meter.add(block)
    return meter.result()


class _OverCeiling(Exception):
    """An MP3 track, decoded whole, goes over its ceiling: its true peak and the ceiling."""

    def __init__(self, peak: float, ceiling: float) -> None:
        super().__init__(f"decodes at {peak:.4f}, over {ceiling:.4f}")
        self.peak = peak
        self.ceiling = ceiling


def _check_whole(path: Path, true_peak_dbtp: float) -> None:
    """Raise _OverCeiling if the MP3 file at `path` decodes over `true_peak_dbtp`, less the room."""
    ceiling = loudness.db_to_gain(true_peak_dbtp - TRUE_PEAK_ROOM_DB)
    floor = ceiling * loudness.db_to_gain(-loudness.INTERPOLATE_WITHIN_DB)
    peak = _decoded_true_peak(path, floor, trimmed=_ENCODER_DELAY + _DECODER_DELAY)
    if peak > ceiling:
        raise _OverCeiling(peak, ceiling)


def quieter(
    chunks: Iterable[npt.NDArray[np.int16]], gain: float
) -> Iterator[npt.NDArray[np.int16]]:
    """16-bit chunks times `gain` (under 1), rounded, as `write_track`'s `again` gives them."""
    for chunk in chunks:
        yield _times(chunk, gain)


def _scaled(pcm: bytes, gain: float) -> bytes:
    """16-bit LE samples times `gain` (under 1), rounded."""
    return _times(np.frombuffer(pcm, dtype="<i2"), gain).astype("<i2").tobytes()


def _times(samples: npt.NDArray[np.int16], gain: float) -> npt.NDArray[np.int16]:
    """16-bit samples times `gain` (under 1), rounded: exact zeros stay zero."""
    quieter: npt.NDArray[np.int16] = np.rint(samples * np.float32(gain)).astype(np.int16)
    return quieter


class _IslandEncoders:
    """The encoders of the islands open in one process (the writer's or a worker's), by number."""

    def __init__(
        self,
        stream: _Mp3Format,
        silence: _Silence,
        n_frames: int,
        *,
        true_peak_dbtp: float | None = None,
    ) -> None:
        self.stream = stream
        self.silence = silence
        self.n_frames = n_frames
        self._ceiling = (
            None
            if true_peak_dbtp is None
            else loudness.db_to_gain(true_peak_dbtp - TRUE_PEAK_ROOM_DB)
        )
        self._open: dict[int, _Island] = {}
        if self._ceiling is not None:
            import soundfile  # noqa: F401  here, before workers fork: they share it

    def open(self, island: int, start: int) -> None:
        """Start an island's encoder at frame `start`."""
        keep = self._ceiling is not None
        self._open[island] = _Island(self.stream, self.silence, start=start, keep=keep)

    def feed(self, island: int, granule: int, pcm: bytes) -> bytes:
        """Feed the island sound from `granule` on; its frames that are ready."""
        encoder = self._open[island]
        encoder.feed(granule, pcm)
        encoder.last_sound = encoder.fed - 1
        if encoder.checked:
            return b""  # held until its true peak is known
        return encoder.take(_island_end(encoder.last_sound, self.n_frames))

    def close(self, island: int, end: int) -> bytes:
        """Flush the island's encoder; its last frames (all of them if held), up to frame `end`."""
        encoder = self._open.pop(island)
        frames = encoder.finish(end)
        if self._ceiling is None or encoder.fed_sound is None:
            return frames
        return self._under_ceiling(encoder.start, encoder.fed_sound, frames, end, self._ceiling)

    def _under_ceiling(
        self, start: int, sound: list[tuple[int, bytes]], frames: bytes, end: int, ceiling: float
    ) -> bytes:
        """The island's frames, encoded again quieter while they decode over `ceiling`.

        Every encode is measured; should none come under in `_CHECK_ATTEMPTS`, the one
        that decoded lowest is kept.
        """
        floor = ceiling * loudness.db_to_gain(-loudness.INTERPOLATE_WITHIN_DB)
        gain, best = 1.0, (math.inf, frames)
        for attempt in range(_CHECK_ATTEMPTS + 1):
            peak = _decoded_true_peak(frames, floor)
            if peak <= ceiling:
                return frames
            best = min(best, (peak, frames), key=lambda measured: measured[0])
            if attempt == _CHECK_ATTEMPTS:
                break
            under_db = _CHECK_AIM_DB - TRUE_PEAK_ROOM_DB + _CHECK_STEP_DB * attempt
            gain *= ceiling / peak * loudness.db_to_gain(-under_db)
            again = _Island(self.stream, self.silence, start=start)
            for granule, pcm in sound:
                again.feed(granule, _scaled(pcm, gain))
            frames = again.finish(end)
        return best[1]


# --- MP3 islands in worker processes --------------------------------------------------
#
# LAME holds the GIL while it encodes, so islands run in parallel only in other processes:
# workers forked by the writer (lazily, one per island in progress, at most one per core),
# each running islands' encoders as `_IslandEncoders` does here. An island's sound goes to
# its worker as it comes, and its frames come back as LAME writes them, so an island as
# long as the track (a music bed) streams like any other. The writer holds back the frames
# of islands that finish early until those before them are written, and waits, rather
# than buffer without bound, once a few MB of sound or a few islands are on their way.
#
# Writer and worker talk over two pipes in messages: a header (kind, island, a frame or
# granule number, payload bytes), then the payload. The workers ignore Ctrl-C, which
# reaches the whole process group: the writer stops them itself, and they exit by
# themselves once the writer's end of their pipe closes, whatever became of the writer.

_MESSAGE = struct.Struct("<Biqi")
_OPEN, _FEED, _CLOSE = 0, 1, 2  # to a worker; the number: first frame, granule, end frame
_FRAMES, _DONE, _FAILED = 3, 4, 5  # from a worker: frames; an island's last frames; an error
_MAX_ENCODER_PROCESSES = 4
_ISLANDS_IN_FLIGHT = 16  # islands begun but not yet written out, at most
_QUEUED_BYTES = 1 << 21  # sound waiting in the writer for a worker's pipe, at most (48 s)
_PIPE_BYTES = 1 << 20  # asked of the kernel for each pipe (24 s of sound); it may give less
_READ_BYTES = 1 << 16
_CLOSE_WEIGHT = 2 * _GRANULE * _TAIL_FRAMES  # a flush is about as much work as that much sound

_Sink = Callable[[int, bytes, bool], None]  # (island, frames, whether they are its last)


def _encoder_processes() -> int:
    """How many processes may encode islands: one per core this one may run on, at most 4."""
    if not hasattr(os, "fork"):
        return 1
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_ENCODER_PROCESSES, cores))


@dataclass(slots=True)
class _Worker:
    """The writer's handle on one encoder process."""

    pid: int
    requests: int  # the write end of the pipe to it, non-blocking
    replies: int  # the read end of the pipe from it, non-blocking
    outbox: deque[memoryview] = field(default_factory=deque)  # not yet in the pipe
    awaiting: deque[int] = field(default_factory=deque)  # the weight of each unanswered request
    load: int = 0  # their sum
    inbox: bytearray = field(default_factory=bytearray)
    running: bool = True


class _EncoderPool:
    """Runs islands' encoders in forked workers (or in this process), frames to `sink`."""

    def __init__(self, encoders: _IslandEncoders, sink: _Sink, *, processes: int) -> None:
        self._encoders = encoders  # used here, and forked into every worker
        self._sink = sink
        self._max_workers = processes if processes > 1 else 0
        self._workers: list[_Worker] = []
        self._by_fd: dict[int, _Worker] = {}
        self._route: dict[int, _Worker | None] = {}  # an open island's worker (None: here)
        self._queued = 0  # bytes in the outboxes

    def open(self, island: int, start: int) -> None:
        """Start an island's encoder at frame `start`, in the least busy worker."""
        worker = self._choose()
        self._route[island] = worker
        if worker is None:
            self._encoders.open(island, start)
        else:
            self._send(worker, _OPEN, island, start)

    def feed(self, island: int, granule: int, pcm: memoryview) -> None:
        """Feed an island whole granules of sound (16-bit LE) from `granule` on."""
        worker = self._route[island]
        if worker is None:
            self._sink(island, self._encoders.feed(island, granule, bytes(pcm)), False)
            return
        self._send(worker, _FEED, island, granule, pcm, weight=len(pcm))
        while self._queued > _QUEUED_BYTES:
            self._pump(wait=True)

    def close(self, island: int, end: int) -> None:
        """End an island at frame `end`."""
        worker = self._route.pop(island)
        if worker is None:
            self._sink(island, self._encoders.close(island, end), True)
        else:
            self._send(worker, _CLOSE, island, end, weight=_CLOSE_WEIGHT)

    def poll(self) -> None:
        """Pass on what the pipes take and the workers have written, without waiting."""
        if self._workers:
            self._pump(wait=False)

    def wait(self, done: Callable[[], bool]) -> None:
        """Pass data to and from the workers until `done()`."""
        while not done():
            if not any(worker.awaiting or worker.outbox for worker in self._workers):
                raise RuntimeError("waiting for MP3 frames that no encoder is making")
            self._pump(wait=True)

    def stop(self) -> None:
        """Stop the workers, idle or not, and reap them."""
        if not self._workers:
            return
        # A second Ctrl-C (the process group's, then a parent's) or a SIGTERM must not cut
        # this short.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        try:
            for worker in self._workers:
                with contextlib.suppress(OSError):
                    os.close(worker.requests)
                if worker.running:  # done or not: nothing they hold is worth waiting for
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
            for worker in self._workers:
                if worker.running:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(worker.pid, 0)
                    worker.running = False
                with contextlib.suppress(OSError):
                    os.close(worker.replies)
            self._workers.clear()
            self._by_fd.clear()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _choose(self) -> _Worker | None:
        """The worker for a new island: an idle one, else a new one, else the least busy."""
        least = min(self._workers, key=lambda worker: worker.load, default=None)
        if (least is None or least.load > 0) and len(self._workers) < self._max_workers:
            worker = self._start()
            if worker is not None:
                return worker
            self._max_workers = len(self._workers)  # no more processes to be had
        return least

    def _start(self) -> _Worker | None:
        """Fork a worker; None if no process can be had."""
        # No Ctrl-C or SIGTERM until the worker is known, so none is left behind untracked.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        try:
            worker = _fork_worker(self._encoders, mask)
            if worker is not None:
                self._workers.append(worker)
                self._by_fd[worker.requests] = self._by_fd[worker.replies] = worker
            return worker
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _send(
        self,
        worker: _Worker,
        kind: int,
        island: int,
        number: int,
        payload: memoryview | None = None,
        *,
        weight: int = 0,
    ) -> None:
        size = 0 if payload is None else len(payload)
        worker.outbox.append(memoryview(_MESSAGE.pack(kind, island, number, size)))
        if payload is not None and size:
            worker.outbox.append(payload)
        self._queued += _MESSAGE.size + size
        if kind != _OPEN:
            worker.awaiting.append(weight)
            worker.load += weight
        self._flush(worker)
        if payload is not None and worker.outbox:
            # What the pipe did not take is copied: the caller may reuse its array.
            worker.outbox[-1] = memoryview(bytes(worker.outbox[-1]))

    def _flush(self, worker: _Worker) -> None:
        outbox = worker.outbox
        while outbox:
            try:
                written = os.write(worker.requests, outbox[0])
            except BlockingIOError:
                return
            except BrokenPipeError:
                raise self._lost(worker) from None
            self._queued -= written
            if written == len(outbox[0]):
                outbox.popleft()
            else:
                outbox[0] = outbox[0][written:]

    def _pump(self, *, wait: bool) -> None:
        poller = select.poll()
        for worker in self._workers:
            poller.register(worker.replies, select.POLLIN)
            if worker.outbox:
                poller.register(worker.requests, select.POLLOUT)
        for fd, _ in poller.poll(None if wait else 0):
            worker = self._by_fd[fd]
            if fd == worker.replies:
                self._receive(worker)
            else:
                self._flush(worker)

    def _receive(self, worker: _Worker) -> None:
        try:
            data = os.read(worker.replies, _READ_BYTES)
        except BlockingIOError:
            return
        if not data:
            raise self._lost(worker)
        worker.inbox += data
        for kind, island, payload in _messages(worker.inbox):
            if kind == _FAILED:
                raise _worker_error(payload)
            worker.load -= worker.awaiting.popleft()
            self._sink(island, payload, kind == _DONE)

    def _lost(self, worker: _Worker) -> Exception:
        """The error for a worker that stopped before its work was done (it is reaped)."""
        _, status = os.waitpid(worker.pid, 0)
        worker.running = False
        # It may have said why, in what is left in its pipe.
        with contextlib.suppress(OSError):
            while data := os.read(worker.replies, _READ_BYTES):
                worker.inbox += data
        for kind, _, payload in _messages(worker.inbox):
            if kind == _FAILED:
                return _worker_error(payload)
        code = os.waitstatus_to_exitcode(status)
        return BuildError(f"an MP3 encoder process stopped ({_describe_exit(code)})")


def _messages(inbox: bytearray) -> Iterator[tuple[int, int, bytes]]:
    """Take the whole messages (kind, island, payload) from the front of `inbox`."""
    while len(inbox) >= _MESSAGE.size:
        kind, island, _, size = _MESSAGE.unpack_from(inbox)
        end = _MESSAGE.size + size
        if len(inbox) < end:
            return
        payload = bytes(inbox[_MESSAGE.size : end])
        del inbox[:end]
        yield kind, island, payload


def _worker_error(message: bytes) -> RuntimeError:
    return RuntimeError(f"MP3 encoder process: {message.decode(errors='replace')}")


def _fork_worker(encoders: _IslandEncoders, mask: Iterable[int]) -> _Worker | None:
    """Fork an encoder process running `encoders`; None if no process can be had."""
    import fcntl  # POSIX only, like fork

    requests_in, requests = os.pipe()
    replies, replies_out = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        for fd in (requests, replies):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    parent, pid = os.getpid(), 0
    try:
        pid = os.fork()
        if pid == 0:
            _worker_main(requests_in, replies_out, encoders, mask)
        os.set_blocking(requests, False)
        os.set_blocking(replies, False)
        return _Worker(pid, requests, replies)
    except BaseException as error:
        if os.getpid() != parent:
            os._exit(1)  # never run the writer's clean-up in a copy of it
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(requests)
        os.close(replies)
        if isinstance(error, OSError) and not pid:
            return None  # fork failed: out of processes or memory
        raise
    finally:
        if os.getpid() == parent:
            os.close(requests_in)
            os.close(replies_out)


def _worker_main(
    requests: int, replies: int, encoders: _IslandEncoders, mask: Iterable[int]
) -> NoReturn:
    """An encoder process: answer the writer's requests until it closes the pipe; exit."""
    code = 1
    try:
        # Ctrl-C goes to the whole process group, SIGTERM perhaps too (a shutdown);
        # the writer stops its workers itself.
        for stopping in STOPS:
            signal.signal(stopping, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        gc.disable()  # nothing here makes cycles, and a collection would copy the heap
        _close_fds_but(requests, replies)
        code = _serve(requests, replies, encoders)
    finally:
        os._exit(code)  # no clean-up of the writer's: it is not ours


def _close_fds_but(*keep: int) -> None:
    """Close every file descriptor but stdin, stdout, stderr and `keep`."""
    # Another worker or writer holding the write end of a worker's pipe would keep it alive.
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    if os.path.isdir("/proc/self/fd"):
        for name in os.listdir("/proc/self/fd"):
            if int(name) >= low:
                with contextlib.suppress(OSError):
                    os.close(int(name))
    else:
        os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _serve(requests: int, replies: int, encoders: _IslandEncoders) -> int:
    """Answer the requests until the pipe closes; the exit status."""
    with open(requests, "rb", buffering=_READ_BYTES) as inbox:
        while len(header := inbox.read(_MESSAGE.size)) == _MESSAGE.size:
            kind, island, number, size = _MESSAGE.unpack(header)
            pcm = inbox.read(size)
            try:
                if kind == _OPEN:
                    encoders.open(island, number)
                    continue
                if kind == _FEED:
                    reply, frames = _FRAMES, encoders.feed(island, number, pcm)
                else:
                    reply, frames = _DONE, encoders.close(island, number)
            except Exception as error:  # a bug: the writer raises it
                message = f"{type(error).__name__}: {error}".encode()
                _write_all(replies, _MESSAGE.pack(_FAILED, island, 0, len(message)) + message)
                return 1
            _write_all(replies, _MESSAGE.pack(reply, island, 0, len(frames)) + frames)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- MP3 islands: the writer ----------------------------------------------------------


@dataclass(slots=True)
class _Placed:
    """An island's place in the stream, and its frames held back until those before are out."""

    start: int  # frame
    end: int = -1  # frame, once closed
    frames: bytearray = field(default_factory=bytearray)
    done: bool = False


class _IslandWriter:
    """Writes a track's audio frames: LAME's around the sound, silent frames elsewhere."""

    def __init__(self, out: IO[bytes], encoders: _IslandEncoders, *, processes: int) -> None:
        self._out = out
        self._silence = silence = encoders.silence
        self._padding_period = encoders.stream.padding_period
        self._n_frames = encoders.n_frames
        self._carry = np.zeros(0, np.int16)  # the samples of a granule not yet whole
        self._granules = 0  # granules [0, _granules) have been seen
        self._written = 0  # frames [0, _written) are in `out`
        self._silent_block = memoryview(silence.cycle * _SILENT_CYCLES)
        self._encoders = _EncoderPool(encoders, self._receive, processes=processes)
        self._islands: dict[int, _Placed] = {}  # not yet wholly written, in order
        self._island: int | None = None  # the island open for sound
        self._last_sound = 0  # the last granule with sound in it, of the open island
        self._next_island = 0
        self._island_bytes = 0  # of sound fed to the open island (as `_Island` counts them)
        # Whether an island had more sound than is kept to check it: it streamed unchecked.
        self.unchecked = False

    def __enter__(self) -> _IslandWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self._encoders.stop()

    def add(self, pcm: npt.NDArray[np.int16]) -> None:
        """Take the next samples of the track."""
        if self._carry.size:  # complete the granule begun in an earlier chunk
            head = np.concatenate((self._carry, pcm[: _GRANULE - self._carry.size]))
            pcm = pcm[_GRANULE - self._carry.size :]
            self._carry = head
            if head.size < _GRANULE:
                return
            self._add_granules(head)
        whole = pcm.size - pcm.size % _GRANULE
        if whole:
            self._add_granules(pcm[:whole])
        self._carry = pcm[whole:].copy()
        self._encoders.poll()

    def finish(self) -> None:
        """Write the frames still owed, to the end of the track."""
        if self._carry.size:  # the track ends inside a granule; silence fills it
            last = np.zeros(_GRANULE, np.int16)
            last[: self._carry.size] = self._carry
            self._carry = np.zeros(0, np.int16)
            self._add_granules(last)
        if self._island is not None:
            self._close_island()
        self._encoders.wait(lambda: not self._islands)
        self._write_silence(self._n_frames)

    def _add_granules(self, pcm: npt.NDArray[np.int16]) -> None:
        first = self._granules
        sounding = np.flatnonzero(pcm.reshape(-1, _GRANULE).any(axis=1))
        if sounding.size:
            breaks = np.flatnonzero(np.diff(sounding) > 1)
            starts = sounding[np.r_[0, breaks + 1]].tolist()
            stops = (sounding[np.r_[breaks, sounding.size - 1]] + 1).tolist()
            for start, stop in zip(starts, stops, strict=True):
                self._add_sound(first + start, pcm[start * _GRANULE : stop * _GRANULE])
        self._granules = first + pcm.size // _GRANULE
        # Sound from here on would start an island of its own: this one can end.
        if self._island is not None and self._starts_island(self._granules):
            self._close_island()

    def _add_sound(self, granule: int, pcm: npt.NDArray[np.int16]) -> None:
        if self._island is not None and self._starts_island(granule):
            self._close_island()
        if self._island is None:
            self._open_island(max(0, self._on_cycle(granule - _LEAD_FRAMES - _PREROLL_GRANULES)))
        assert self._island is not None
        self._last_sound = granule + pcm.size // _GRANULE - 1
        self._island_bytes += pcm.nbytes
        self.unchecked |= self._island_bytes > _CHECKED_ISLAND_BYTES
        self._encoders.feed(self._island, granule, _pcm(pcm))

    def _starts_island(self, granule: int) -> bool:
        """Whether sound in `granule` would start a new island after the current one."""
        start = self._on_cycle(granule - _LEAD_FRAMES - _PREROLL_GRANULES)
        return (
            granule - self._last_sound > _SETTLE_GRANULES
            and start >= self._last_sound + 1 + _TAIL_FRAMES
        )

    def _on_cycle(self, frame: int) -> int:
        """The frame at or before `frame` where LAME's padding cycle starts."""
        return frame - frame % self._padding_period

    def _open_island(self, start: int) -> None:
        self._encoders.wait(lambda: len(self._islands) < _ISLANDS_IN_FLIGHT)
        island, self._next_island = self._next_island, self._next_island + 1
        self._islands[island] = _Placed(start)
        if len(self._islands) == 1:
            self._write_silence(start)
        self._island, self._last_sound, self._island_bytes = island, start, 0
        self._encoders.open(island, start)

    def _close_island(self) -> None:
        assert self._island is not None
        island, self._island = self._island, None
        end = _island_end(self._last_sound, self._n_frames)
        self._islands[island].end = end
        self._encoders.close(island, end)

    def _receive(self, island: int, frames: bytes, last: bool) -> None:
        """Frames of an island from its encoder: written if it is the first one not yet out."""
        placed = self._islands[island]
        if island == next(iter(self._islands)):
            self._out.write(frames)
        else:
            placed.frames += frames
        if last:
            placed.done = True
            self._write_finished()

    def _write_finished(self) -> None:
        """Pass the islands that are wholly written; write what the next one holds."""
        while self._islands:
            first = next(iter(self._islands))
            if not self._islands[first].done:
                return
            self._written = self._islands.pop(first).end
            if self._islands:
                following = self._islands[next(iter(self._islands))]
                self._write_silence(following.start)
                self._out.write(following.frames)
                following.frames = bytearray()

    def _write_silence(self, end: int) -> None:
        block_frames = _SILENT_CYCLES * len(self._silence.headers)
        position = self._silence.position
        frame = self._written
        while frame < end:
            phase = frame % block_frames
            stop = min(block_frames, phase + end - frame)
            self._out.write(self._silent_block[position(phase) : position(stop)])
            frame += stop - phase
        self._written = max(self._written, end)


def _write_mp3_islands(
    tmp: Path,
    chunks: Iterable[npt.NDArray[np.int16]],
    *,
    n_samples: int,
    stream: _Mp3Format,
    info: TrackInfo,
    final: Path,
    true_peak_dbtp: float | None,
    check_whole: bool = False,
) -> None:
    """Write the track's MP3 from LAME islands; with `check_whole`, raise _OverCeiling if
    an island streamed unchecked and the file decodes over `true_peak_dbtp`."""
    silence = _Silence.of(stream)
    n_frames = stream.frames_for(n_samples)
    info_size = silence.offsets[1]  # the Info frame is an unpadded frame
    try:
        with tmp.open("w+b") as out:
            # The tag first, so the file needs no second copy; the Info frame once its
            # music CRC is known.
            out.write(_id3_tag(info))
            info_at = out.tell()
            out.write(bytes(info_size))
            encoders = _IslandEncoders(stream, silence, n_frames, true_peak_dbtp=true_peak_dbtp)
            with _IslandWriter(out, encoders, processes=_encoder_processes()) as writer:
                sent = 0
                for chunk in chunks:
                    pcm = _samples(chunk)
                    sent += pcm.size
                    if sent <= n_samples:  # more is refused below, once counted
                        writer.add(pcm)
                _check_count(sent, n_samples)
                writer.finish()
            unchecked = writer.unchecked
            end = out.tell()
            if end - info_at != info_size + silence.position(n_frames):
                raise RuntimeError("the frames written do not follow LAME's padding cycle")
            music_crc = _crc16_of_file(out, info_at + info_size, end)
            out.seek(info_at)
            out.write(
                _info_frame(
                    stream, silence, n_samples=n_samples, n_frames=n_frames, music_crc=music_crc
                )
            )
    except OSError as error:
        raise BuildError(f"{final}: cannot write the track: {error}") from error
    if check_whole and unchecked and true_peak_dbtp is not None:
        _check_whole(tmp, true_peak_dbtp)


def _info_frame(
    stream: _Mp3Format, silence: _Silence, *, n_samples: int, n_frames: int, music_crc: int
) -> bytes:
    """The Xing "Info" frame and LAME tag: frame count, size, seek table, delay and padding."""
    size = silence.offsets[1]
    total = size + silence.position(n_frames)  # bytes from this frame to the end
    toc = bytes(
        min(255, 256 * (size + silence.position(i * n_frames // 100)) // total) for i in range(100)
    )
    padding = n_frames * _GRANULE - _ENCODER_DELAY - n_samples
    frame = bytearray(size)
    frame[:4] = silence.headers[0]
    at = 4 + _SIDE_INFO_BYTES
    # fmt: off
    xing = (
        b"Info" + (0x0F).to_bytes(4, "big")  # frames, bytes, seek table and quality follow
        + n_frames.to_bytes(4, "big") + total.to_bytes(4, "big") + toc + bytes(4)
    )
    lame = (
        _LAME_VENDOR + bytes([0x01, 0])  # tag revision 0, constant bitrate; lowpass unknown
        + bytes(4 + 2 + 2 + 1)  # no peak, no replay gain, no encoder flags
        + bytes([min(255, stream.bitrate_kbps)])
        + ((_ENCODER_DELAY << 12) | padding).to_bytes(3, "big")
        + bytes(1 + 1 + 2)  # misc, MP3 gain, preset
        + total.to_bytes(4, "big") + music_crc.to_bytes(2, "big")
    )
    # fmt: on
    frame[at : at + len(xing)] = xing
    at += len(xing)
    frame[at : at + len(lame)] = lame
    at += len(lame)
    # LAME's tag CRC covers the frame up to the CRC itself.
    frame[at : at + 2] = _crc16(frame[:at]).to_bytes(2, "big")
    return bytes(frame)


def _is_frame(data: bytes | bytearray, pos: int) -> bool:
    return pos + 4 + _SIDE_INFO_BYTES <= len(data) and data[pos] == 0xFF and data[pos + 1] >= 0xE0


def _padding_bit(data: bytes | bytearray, pos: int) -> int:
    return (data[pos + 2] >> 1) & 1


def _part2_3_length(data: bytes | bytearray, pos: int) -> int:
    """The bits of main data an MPEG-2 mono frame's granule has; 0 codes silence."""
    # Side info: main_data_begin (8 bits), a private bit, then part2_3_length (12 bits).
    return ((data[pos + 5] & 0x7F) << 5) | (data[pos + 6] >> 3)


def _crc16_of_file(f: IO[bytes], start: int, end: int) -> int:
    """The CRC-16 of LAME's tag (as `_crc16`) of the file's bytes [start, end)."""
    f.seek(start)
    # Zero bytes in front leave a CRC from 0 as it was: the first block takes the
    # remainder, padded to whole words, and every later block is a whole one.
    first = (end - start) % _CRC_BLOCK_BYTES or _CRC_BLOCK_BYTES
    crc = _crc16_words(bytes(first % 2) + f.read(first))
    after_block = _crc16_after_zeros(_CRC_BLOCK_BYTES // 2)
    for _ in range((end - start - first) // _CRC_BLOCK_BYTES):
        crc = int(after_block[crc]) ^ _crc16_words(f.read(_CRC_BLOCK_BYTES))
    return crc


def _crc16_words(data: bytes) -> int:
    """The CRC-16 (from 0) of an even number of bytes, in lanes that run side by side."""
    words = np.frombuffer(data, "<u2")
    lanes = min(_CRC_LANES, 1 << max(0, (words.size // 64).bit_length() - 1))
    length = -(-words.size // lanes)
    grid = np.zeros(lanes * length, np.uint16)
    grid[grid.size - words.size :] = words  # leading zeros: see `_crc16_of_file`
    step = _crc16_word_table()
    crcs = np.zeros(lanes, np.uint16)
    for column in np.ascontiguousarray(grid.reshape(lanes, length).T):
        crcs = step[crcs ^ column]
    # Then fold the lanes pairwise: the left one's CRC runs on through the right one's length.
    while crcs.size > 1:
        crcs = _crc16_after_zeros(length)[crcs[0::2]] ^ crcs[1::2]
        length *= 2
    return int(crcs[0])


@functools.cache
def _crc16_word_table() -> npt.NDArray[np.uint16]:
    """For every register r and little-endian word w, `table[r ^ w]` is r after w's two bytes."""
    byte_table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        byte_table = np.where(byte_table & 1, (byte_table >> 1) ^ 0xA001, byte_table >> 1)
    register = np.arange(1 << 16, dtype=np.uint32)
    for _ in range(2):
        register = (register >> 8) ^ byte_table[register & 0xFF]
    return register.astype(np.uint16)


@functools.lru_cache(maxsize=16)
def _crc16_after_zeros(words: int) -> npt.NDArray[np.uint16]:
    """For every register, the register after `words` zero words."""
    if words == 1:
        return _crc16_word_table()
    half = _crc16_after_zeros(words // 2)
    table = half[half]
    return _crc16_word_table()[table] if words % 2 else table


# --- MP3 details ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LameTag:
    """Where the LAME tag sits in a stream's first frame, and what it says."""

    offset: int  # of the tag from the first frame's sync word
    samples_per_frame: int
    frames: int  # audio frames after the Xing/Info frame
    delay: int  # encoder delay, samples
    padding: int  # samples after the track in the last frames

    @property
    def n_samples(self) -> int:
        """The samples a gapless decoder gives back."""
        return self.frames * self.samples_per_frame - self.delay - self.padding


def _parse_lame_tag(head: bytes | bytearray) -> _LameTag | None:
    """The LAME tag of the MP3 frame that `head` starts with, if it has one."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0 or (head[1] >> 1) & 3 != 1:
        return None  # not a layer III frame
    mpeg1 = (head[1] >> 3) & 3 == 3
    mono = (head[3] >> 6) & 3 == 3
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    xing = 4 + (0 if head[1] & 1 else 2) + side_info
    if head[xing : xing + 4] not in (b"Xing", b"Info"):
        return None
    flags = int.from_bytes(head[xing + 4 : xing + 8], "big")
    if not flags & 1:
        return None  # no frame count
    frames = int.from_bytes(head[xing + 8 : xing + 12], "big")
    offset = xing + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4)
    offset += 4 * bool(flags & 8)
    if len(head) < offset + 36:
        return None
    delay_padding = int.from_bytes(head[offset + 21 : offset + 24], "big")
    return _LameTag(
        offset=offset,
        samples_per_frame=1152 if mpeg1 else 576,
        frames=frames,
        delay=delay_padding >> 12,
        padding=delay_padding & 0xFFF,
    )


def _finish_lame_header(audio: Path, *, n_samples: int, final: Path) -> None:
    """Declare the exact end padding in the LAME tag, so decoders give back n_samples."""
    # ffmpeg takes the padding from the last packet's skip-samples, capped at one frame;
    # when the samples to drop span the last two frames (n_samples % 576 < 47 at
    # 22.05 kHz) the declared padding falls short and the decoded track runs long.
    with audio.open("r+b") as f:
        head = bytearray(f.read(_HEADER_BYTES))
        tag = _parse_lame_tag(head)
        if tag is None:
            raise BuildError(f"{final}: the encoder wrote no Xing/LAME header")
        padding = tag.frames * tag.samples_per_frame - tag.delay - n_samples
        if not 0 <= padding < 4096:
            raise BuildError(f"{final}: the encoder left {padding} samples of padding")
        at = tag.offset
        head[at + 21 : at + 24] = ((tag.delay << 12) | padding).to_bytes(3, "big")
        # LAME's tag CRC covers the frame up to the CRC itself.
        head[at + 34 : at + 36] = _crc16(head[: at + 34]).to_bytes(2, "big")
        f.seek(0)
        f.write(head[: at + 36])


def _mp3_samples(path: Path) -> int | None:
    """The track's length in samples from its LAME tag, or None without one."""
    with path.open("rb") as f:
        head = f.read(10)
        if head[:3] == b"ID3" and len(head) == 10:
            size = sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(head[6:10]))
            footer = 10 if head[5] & 0x10 else 0
            f.seek(10 + size + footer)
        else:
            f.seek(0)
        tag = _parse_lame_tag(f.read(_HEADER_BYTES))
    return None if tag is None else tag.n_samples


def _crc16(data: bytes | bytearray) -> int:
    """CRC-16 (polynomial 0x8005, reflected, initial 0), as in LAME's tag."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _id3_tag(info: TrackInfo) -> bytes:
    """The ID3v2.3 tag: the version most players read, and ffmpeg reads CHAP/CTOC in it."""
    lang = _iso_639_2(info.language, unknown="XXX")
    tags = ID3()
    tags.add(TIT2(encoding=Encoding.UTF8, text=[info.title]))
    tags.add(TPE1(encoding=Encoding.UTF8, text=[ARTIST]))
    tags.add(TALB(encoding=Encoding.UTF8, text=[info.album]))
    tags.add(TCON(encoding=Encoding.UTF8, text=[info.genre]))
    if lang != "XXX":  # the language spoken, for players that sort or show by it
        tags.add(TLAN(encoding=Encoding.UTF8, text=[lang]))
    tags.add(COMM(encoding=Encoding.UTF8, lang=lang, desc="", text=[info.comment]))
    tags.add(USLT(encoding=Encoding.UTF8, lang=lang, desc="", text=_lyrics(info)))
    ids = [f"ch{i}" for i in range(len(info.chapters))]
    for element_id, chapter in zip(ids, info.chapters, strict=True):
        tags.add(
            CHAP(
                element_id=element_id,
                start_time=chapter.start_ms,
                end_time=chapter.end_ms,
                start_offset=0xFFFFFFFF,  # no byte offsets: players go by time
                end_offset=0xFFFFFFFF,
                sub_frames=[TIT2(encoding=Encoding.UTF8, text=[chapter.title])],
            )
        )
    for toc in _tables_of_contents(ids):
        tags.add(toc)
    buffer = io.BytesIO()
    # No padding: its size would otherwise depend on mutagen's heuristics.
    tags.save(buffer, v2_version=3, padding=lambda _info: 0)
    return _chapters_in_order(buffer.getvalue())


_CTOC_ENTRIES = 255  # a CTOC counts its entries in one byte


def _tables_of_contents(ids: list[str]) -> list[CTOC]:
    """The CTOC frames that list the chapters `ids` in order: the top-level one first.

    Up to 255 chapters, the top-level CTOC lists them all, as it always has. Past that,
    as the ID3v2 chapter addendum allows (a CTOC may list CTOCs), ordered CTOCs of up to
    255 chapters each list them, and the top-level one lists those CTOCs in order (past
    255 x 255, through one more level of CTOCs). Players that read no CTOC, ffmpeg
    among them, go by the CHAP frames, which stay in chapter order.
    """
    if not ids:
        return []
    tables: list[CTOC] = []
    entries = ids
    while len(entries) > _CTOC_ENTRIES:
        parts = [entries[i : i + _CTOC_ENTRIES] for i in range(0, len(entries), _CTOC_ENTRIES)]
        names = [f"toc{len(tables) + n}" for n in range(1, len(parts) + 1)]
        tables += [
            CTOC(element_id=name, flags=CTOCFlags.ORDERED, child_element_ids=part, sub_frames=[])
            for name, part in zip(names, parts, strict=True)
        ]
        entries = names
    top = CTOC(
        element_id="toc",
        flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
        child_element_ids=entries,
        sub_frames=[],
    )
    return [top, *tables]


def _chapters_in_order(tag: bytes) -> bytes:
    """The ID3v2.3 tag with its CHAP frames in chapter order."""
    # mutagen sorts frames of a kind by their size, and ffmpeg lists chapters in the
    # order their frames come in the file, whatever the CTOC says.
    end = 10 + sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(tag[6:10]))
    frames: list[bytes] = []
    pos = 10
    while pos + 10 <= end and tag[pos] != 0:  # a zero byte starts the padding
        size = int.from_bytes(tag[pos + 4 : pos + 8], "big")  # v2.3: a plain integer
        frames.append(tag[pos : pos + 10 + size])
        pos += 10 + size

    def chapter_number(frame: bytes) -> int:
        return int(frame[10 : frame.index(b"\0", 10)].removeprefix(b"ch"))

    chapters = iter(sorted((f for f in frames if f[:4] == b"CHAP"), key=chapter_number))
    frames = [next(chapters) if f[:4] == b"CHAP" else f for f in frames]
    return tag[:10] + b"".join(frames) + tag[pos:]


def _read_mp3(path: Path) -> TrackSummary:
    audio = MP3(path)
    tags = audio.tags
    samples = _mp3_samples(path)
    # mutagen takes delay and padding only from a LAME tag whose vendor string is "LAME".
    if samples is None:
        duration_ms = round(_stream_number(audio.info, "length", path) * 1000)
    else:
        sample_rate = int(_stream_number(audio.info, "sample_rate", path))
        duration_ms = _ms(samples, sample_rate) if sample_rate > 0 else 0
    if tags is None:
        return TrackSummary(path.stem, duration_ms, ())
    title = str(tags["TIT2"].text[0]) if "TIT2" in tags else path.stem
    chaps = {frame.element_id: frame for frame in tags.getall("CHAP")}
    tocs = {frame.element_id: frame.child_element_ids for frame in tags.getall("CTOC")}
    top = [frame for frame in tags.getall("CTOC") if frame.flags & CTOCFlags.TOP_LEVEL]
    order = (
        _listed(top[0].element_id, tocs)
        if top
        else sorted(chaps, key=lambda e: chaps[e].start_time)
    )
    chapters = []
    for element_id in order:
        frame = chaps.get(element_id)
        if frame is None:
            continue
        sub = frame.sub_frames.get("TIT2")
        name = str(sub.text[0]) if sub is not None else element_id
        chapters.append(Chapter(name, int(frame.start_time), int(frame.end_time)))
    return TrackSummary(title, duration_ms, tuple(chapters))


def _listed(toc: str, tocs: Mapping[str, Sequence[str]]) -> list[str]:
    """What the CTOC `toc` lists, in order, with each CTOC among it replaced by what it lists.

    `tocs`: every CTOC's entries, by its element id.
    """
    order: list[str] = []
    seen = {toc}  # a CTOC listed twice, or in a loop, is followed once
    pending = list(reversed(tocs[toc]))
    while pending:
        element_id = pending.pop()
        if element_id not in tocs:
            order.append(element_id)
        elif element_id not in seen:
            seen.add(element_id)
            pending += reversed(tocs[element_id])
    return order


# --- M4A details ----------------------------------------------------------------------


def _ffmetadata(info: TrackInfo) -> str:
    """Tags and chapters in ffmpeg's metadata file format."""
    fields = {
        "title": info.title,
        "artist": ARTIST,
        "album": info.album,
        "genre": info.genre,
        "comment": info.comment,
        "lyrics": _lyrics(info),
    }
    lines = [";FFMETADATA1"]
    lines += [f"{key}={_ffmetadata_escape(value)}" for key, value in fields.items()]
    for chapter in info.chapters:
        lines += [
            "",
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={chapter.start_ms}",
            f"END={chapter.end_ms}",
            f"title={_ffmetadata_escape(chapter.title)}",
        ]
    return "\n".join(lines) + "\n"


def _ffmetadata_escape(value: str) -> str:
    for special in ("\\", "=", ";", "#", "\n"):
        value = value.replace(special, "\\" + special)
    return value


def _read_m4a(path: Path) -> TrackSummary:
    audio = MP4(path)
    duration_ms = round(_stream_number(audio.info, "length", path) * 1000)
    tags = audio.tags
    title = str(tags["\xa9nam"][0]) if tags is not None and "\xa9nam" in tags else path.stem
    starts = [(round(c.start * 1000), str(c.title)) for c in (audio.chapters or [])]
    ends = [start for start, _ in starts[1:]] + [duration_ms] * bool(starts)
    chapters = tuple(
        Chapter(name, start, end) for (start, name), end in zip(starts, ends, strict=True)
    )
    return TrackSummary(title, duration_ms, chapters)


# --- files ----------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- small helpers --------------------------------------------------------------------


def _pcm(chunk: npt.NDArray[np.int16]) -> memoryview:
    """A chunk as little-endian 16-bit bytes, without copying where it can."""
    return np.ascontiguousarray(_samples(chunk), dtype="<i2").data.cast("B")


def _samples(chunk: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """The chunk, checked to be a 1-D array of 16-bit samples."""
    if chunk.ndim != 1 or chunk.dtype.kind != "i" or chunk.dtype.itemsize != 2:
        raise ValueError(f"chunks must be 1-D int16 arrays, got {chunk.dtype} {chunk.shape}")
    return chunk


def _check_count(sent: int, n_samples: int) -> None:
    if sent != n_samples:
        raise ValueError(f"the chunks held {sent} samples, not n_samples={n_samples}")


def _stream_number(stream_info: object, name: str, path: Path) -> float:
    # mutagen declares `info` as None on the base class, so mypy needs the lookup spelled out.
    value = getattr(stream_info, name, None)
    if not isinstance(value, float | int) or value < 0:
        raise ValueError(f"{path}: no {name} in the stream info")
    return value


def _lyrics(info: TrackInfo) -> str:
    return "\n".join(_one_line(text) for _, text in info.transcript)


def _iso_639_2(language: str, *, unknown: str) -> str:
    language = language.lower()
    if len(language) == 3 and language.isalpha():
        return language
    return _ISO_639_2.get(language.split("-")[0], unknown)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ms(samples: int, sample_rate: int) -> int:
    return round(samples * 1000 / sample_rate)


def _round_seconds(ms: int) -> int:
    return (ms + 500) // 1000


def _mm_ss(seconds: int) -> str:
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _lrc_time(ms: int) -> str:
    centis = ms // 10
    return f"{centis // 6000:02d}:{centis // 100 % 60:02d}.{centis % 100:02d}"
