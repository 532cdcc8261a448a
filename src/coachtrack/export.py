"""PCM chunks -> MP3 / M4A / WAV with tags and chapters, plus the LRC and M3U8 beside them.

Every file appears whole or not at all: it is written to a dot-prefixed temporary
file in the destination folder and moved onto its name with `os.replace` only
once complete. The track is streamed: chunks go straight to the encoder and are
never joined.
"""

# mutagen's classes carry no type hints, and calling them is what this module is for.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import wave
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Literal, NamedTuple

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
    TPE1,
    USLT,
    CTOCFlags,
    Encoding,
)
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4

from coachtrack.errors import BuildError
from coachtrack.tools import ffmpeg_path

TrackFormat = Literal["mp3", "m4a", "wav"]
TRACK_SUFFIXES = (".mp3", ".m4a", ".wav")
ARTIST = "coachtrack"
PLAYLIST_NAME = "playlist.m3u8"

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
# quantizer shaves a steady ~0.45 dB off at 64-96 kbps and 22.05 kHz. Mastering aims
# that much higher so the file, not the PCM, meets the loudness target.
LEVEL_LOSS_DB: dict[str, float] = {"mp3": 0.45, "m4a": 0.0, "wav": 0.0}
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
) -> None:
    """Encode mono int16 chunks (n_samples in all) into a tagged track at `path`, atomically."""
    if n_samples <= 0 or sample_rate <= 0 or bitrate_kbps <= 0:
        raise ValueError(f"bad track parameters: {n_samples=}, {sample_rate=}, {bitrate_kbps=}")
    path = Path(path)
    with _temp_beside(path) as tmp:
        if fmt == "wav":
            _write_wav(tmp, chunks, n_samples=n_samples, sample_rate=sample_rate)
        elif fmt == "mp3":
            _write_mp3(
                tmp,
                chunks,
                n_samples=n_samples,
                sample_rate=sample_rate,
                info=info,
                bitrate_kbps=bitrate_kbps,
                final=path,
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
        os.replace(tmp, path)


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


def write_lrc(path: Path, info: TrackInfo) -> None:
    """Write the transcript as an LRC file beside the track, atomically."""
    _write_text_atomic(Path(path), lrc_text(info))


def write_playlist(folder: Path) -> None:
    """Write `playlist.m3u8` listing every track in `folder`, by file name, atomically."""
    folder = Path(folder)
    tracks = sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix in TRACK_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    lines = ["#EXTM3U"]
    for name in tracks:
        summary = _summary_or_fallback(folder / name)
        seconds = -1 if summary.duration_ms < 0 else _round_seconds(summary.duration_ms)
        lines += [f"#EXTINF:{seconds},{_one_line(summary.title)}", name]
    _write_text_atomic(folder / PLAYLIST_NAME, "\n".join(lines) + "\n")


def read_track_info(path: Path) -> TrackSummary:
    """Read a track's title, length and chapters back from its tags (mp3, m4a or wav)."""
    path = Path(path)
    if path.suffix == ".mp3":
        return _read_mp3(path)
    if path.suffix == ".m4a":
        return _read_m4a(path)
    if path.suffix == ".wav":
        with wave.open(str(path), "rb") as w:
            duration_ms = _ms(w.getnframes(), w.getframerate())
        return TrackSummary(path.stem, duration_ms, ())
    raise ValueError(f"{path}: not a track file ({', '.join(TRACK_SUFFIXES)})")


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


def _write_mp3(
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
            "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
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
            "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
            "-f", "ffmetadata", "-i", f"file:{metadata}",
            "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1",
            "-c:a", "aac", "-b:a", f"{bitrate_kbps}k", "-ar", str(_AAC_SAMPLE_RATE),
            "-metadata:s:a:0", f"language={_iso_639_2(info.language, unknown='und')}",
            "-fflags", "+bitexact", "-flags", "+bitexact",
            # The edit list then states the length to the sample, not to the millisecond.
            "-movie_timescale", str(_AAC_SAMPLE_RATE),
            "-movflags", "+faststart",
            "-f", "ipod", f"file:{tmp}",
        ]
        # fmt: on
        _run_ffmpeg(args, chunks, n_samples=n_samples, final=final)


# --- ffmpeg ---------------------------------------------------------------------------


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
    if ids:
        tags.add(
            CTOC(
                element_id="toc",
                flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                child_element_ids=ids,
                sub_frames=[],
            )
        )
    buffer = io.BytesIO()
    # No padding: its size would otherwise depend on mutagen's heuristics.
    tags.save(buffer, v2_version=3, padding=lambda _info: 0)
    return _chapters_in_order(buffer.getvalue())


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
    tocs = [toc for toc in tags.getall("CTOC") if toc.flags & CTOCFlags.TOP_LEVEL]
    order = (
        list(tocs[0].child_element_ids)
        if tocs
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


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """A new, empty, dot-prefixed file beside `path`, removed on exit unless moved away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        # pid and a random token: concurrent writers of one target never share a name.
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        break
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _write_text_atomic(path: Path, text: str) -> None:
    with _temp_beside(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
        _fsync(tmp)
        os.replace(tmp, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _summary_or_fallback(path: Path) -> TrackSummary:
    """The track's tags, or its file stem and an unknown length (-1) if they cannot be read."""
    try:
        return read_track_info(path)
    except Exception:  # a damaged track must not stop the playlist
        return TrackSummary(path.stem, -1, ())


# --- small helpers --------------------------------------------------------------------


def _pcm(chunk: npt.NDArray[np.int16]) -> memoryview:
    """A chunk as little-endian 16-bit bytes, without copying where it can."""
    if chunk.ndim != 1 or chunk.dtype.kind != "i" or chunk.dtype.itemsize != 2:
        raise ValueError(f"chunks must be 1-D int16 arrays, got {chunk.dtype} {chunk.shape}")
    return np.ascontiguousarray(chunk, dtype="<i2").data.cast("B")


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
