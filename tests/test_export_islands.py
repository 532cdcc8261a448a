"""MP3 from LAME islands: exact length and timing, digital silence, the same audio as one
whole-track encode, and the same bytes whatever the chunking and the worker processes;
clean stops. Real LAME and ffmpeg."""

# mutagen's classes carry no type hints.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from mutagen.mp3 import MP3

from coachtrack import export
from coachtrack.errors import BuildError, UserError
from coachtrack.export import TrackInfo, read_track_info, write_track
from coachtrack.tools import ffmpeg_path, ffprobe_path

from .e2e import FOREGROUND_JOB, killed_at_the_end

SR = 22050
GRANULE = 576
DELAY = 576 + 529  # LAME's encoder delay and the decoder's
Samples = npt.NDArray[np.int16]


def info_for(n_samples: int, rate: int = SR) -> TrackInfo:
    return TrackInfo("t", "phone", "Fitness", "", "en", round(n_samples * 1000 / rate), (), ())


def speechlike(rng: np.random.Generator, n: int, level: float) -> Samples:
    """Noise under a syllable-like envelope, never exactly zero inside."""
    envelope = 0.6 + 0.4 * np.sin(np.linspace(0, 5 * np.pi, n)) ** 2
    audio = rng.standard_normal(n) * level * envelope
    audio[np.abs(audio) < 1] = 1.0
    return np.clip(audio, -32768, 32767).astype(np.int16)


def tone(n: int, freq: float, level: float) -> Samples:
    audio = level * np.sin(2 * np.pi * freq * np.arange(n) / SR)
    audio[np.abs(audio) < 1] = 1.0
    return audio.astype(np.int16)


# Sound touching both ends; gaps that merge islands and gaps that split them; a quiet
# tone long after loud noise (where LAME's adaptive threshold must have settled); a click.
BURSTS: tuple[tuple[float, str, float, float], ...] = (
    # (start s, kind, length s, level)
    (0.0, "noise", 1.0, 9000),
    (3.0, "tone", 0.5, 6000),  # 2 s after: one island with the first
    (9.5, "tone", 0.4, 300),  # 6 s after: an island of its own
    (13.2, "noise", 3.0, 4000),
    (16.25, "click", 0.0, 20000),  # 50 ms after the noise
    (24.0, "noise", 2.0, 7000),  # runs to the last sample
)
N_TRACK = 26 * SR + 1  # n % 576 == 1: one sample into the last granule


def track(n: int = N_TRACK) -> Samples:
    """The test track: the bursts above, exact zeros elsewhere."""
    rng = np.random.default_rng(7)
    pcm = np.zeros(n, np.int16)
    for start_s, kind, length_s, level in BURSTS:
        start = round(start_s * SR)
        if start >= n:
            continue
        last = start_s == BURSTS[-1][0]
        length = n - start if last else min(n - start, max(1, round(length_s * SR)))
        if kind == "noise":
            pcm[start : start + length] = speechlike(rng, length, level)
        elif kind == "tone":
            pcm[start : start + length] = tone(length, 660, level)
        else:
            pcm[start] = int(level)
    return pcm


def onsets() -> list[int]:
    return [round(start_s * SR) for start_s, *_ in BURSTS]


def chunked(pcm: Samples, sizes: tuple[int, ...]) -> Iterator[Samples]:
    start, i = 0, 0
    while start < len(pcm):
        yield pcm[start : start + sizes[i % len(sizes)]]
        start += sizes[i % len(sizes)]
        i += 1


def write(
    path: Path, pcm: Samples, *, rate: int = SR, kbps: int = 64, sizes: tuple[int, ...] = (SR,)
) -> None:
    write_track(
        path,
        chunked(pcm, sizes),
        n_samples=len(pcm),
        sample_rate=rate,
        info=info_for(len(pcm), rate),
        bitrate_kbps=kbps,
    )


def decode(source: Path | bytes, rate: int = SR) -> Samples:
    """The MP3 as ffmpeg decodes it: from a file, gapless; from raw frames, every sample."""
    name = str(source) if isinstance(source, Path) else "pipe:0"
    # fmt: off
    command = [ffmpeg_path(), "-v", "error", "-f", "mp3", "-i", name,
               "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"]
    # fmt: on
    stdin = None if isinstance(source, Path) else source
    out = subprocess.run(command, input=stdin, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int16)


def whole_track_encode(pcm: Samples, rate: int = SR, kbps: int = 64) -> Samples:
    """What one LAME encoder run over the whole track decodes to, delays cut."""
    encoder = export._Mp3Format(rate, kbps).encoder()
    frames = bytes(encoder.encode(pcm.astype("<i2").tobytes())) + bytes(encoder.flush())
    return decode(frames, rate)[DELAY : DELAY + len(pcm)]


def audio_start(data: bytes) -> int:
    """Where the Info frame starts: right after the ID3v2 tag."""
    assert data[:3] == b"ID3"
    return 10 + sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(data[6:10]))


def frame_sizes(data: bytes, start: int, rate: int = SR) -> list[int]:
    sizes = []
    pos = start
    while pos < len(data):
        assert data[pos] == 0xFF and data[pos + 1] & 0xE0 == 0xE0, pos
        kbps = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)[data[pos + 2] >> 4]
        sizes.append(72_000 * kbps // rate + ((data[pos + 2] >> 1) & 1))
        pos += sizes[-1]
    assert pos == len(data)
    return sizes


@pytest.fixture
def island_starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first frame of every island the writer opens, as it opens them."""
    starts: list[int] = []
    original = export._EncoderPool.open

    def spied(self: export._EncoderPool, island: int, start: int) -> None:
        starts.append(start)
        original(self, island, start)

    monkeypatch.setattr(export._EncoderPool, "open", spied)
    return starts


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Samples, Path]:
    pcm = track()
    path = tmp_path_factory.mktemp("islands") / "t.mp3"
    write(path, pcm, sizes=(1000, 7777, 333, 22050))
    return pcm, path


@pytest.fixture(scope="module")
def ffmpeg_reference(
    encoded: tuple[Samples, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The same track as `encoded`, written by ffmpeg's libmp3lame in one pass."""
    reference = tmp_path_factory.mktemp("ffmpeg") / "ffmpeg.mp3"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(export.ENCODER_ENV, "ffmpeg")
        write(reference, encoded[0])
    return reference


# --- the audio ----------------------------------------------------------------------


def test_islands_decode_like_one_whole_track_encode(encoded: tuple[Samples, Path]) -> None:
    pcm, path = encoded
    decoded = decode(path)
    assert len(decoded) == len(pcm)
    assert np.array_equal(decoded, whole_track_encode(pcm))


def test_the_track_has_merged_and_separate_islands(
    tmp_path: Path, island_starts: list[int]
) -> None:
    starts = island_starts
    write(tmp_path / "t.mp3", track())
    # Bursts 1 and 2 (2 s apart) share an island, as do the noise and the click; the quiet
    # tone, 6 s after loud noise, and the noise 3.3 s after it (the least that splits) do not.
    first_sound = [start_s * SR // GRANULE for start_s, *_ in BURSTS]
    assert len(starts) == 4
    assert starts[0] == 0 and starts[1] < first_sound[2] < starts[2] < first_sound[3]


def test_islands_match_the_ffmpeg_reference(
    encoded: tuple[Samples, Path], ffmpeg_reference: Path
) -> None:
    pcm, path = encoded
    reference = ffmpeg_reference
    ours, theirs = decode(path).astype(np.float64), decode(reference).astype(np.float64)
    sounding = (ours != 0) | (theirs != 0)
    rms = float(np.sqrt(np.mean((ours - theirs)[sounding] ** 2)))
    coding_noise = float(np.sqrt(np.mean((theirs - pcm)[sounding] ** 2)))
    print(f"RMS vs ffmpeg: {rms:.4f} LSB over sound (LAME's own coding noise: {coding_noise:.0f})")
    assert rms <= 0.2


def test_sounds_land_on_their_samples(encoded: tuple[Samples, Path]) -> None:
    pcm, path = encoded
    decoded = decode(path).astype(np.float64)
    source = pcm.astype(np.float64)
    window, reach = SR // 4, 64
    for onset in onsets():
        lo, hi = max(0, onset - window), min(len(pcm), onset + window)
        lags = range(-reach, reach + 1)
        scores = [
            float(
                np.dot(
                    source[lo + reach : hi - reach], decoded[lo + reach + lag : hi - reach + lag]
                )
            )
            for lag in lags
        ]
        assert lags[int(np.argmax(scores))] == 0, onset


def test_silence_is_digital_away_from_sound(encoded: tuple[Samples, Path]) -> None:
    pcm, path = encoded
    decoded = decode(path)
    near = np.zeros(len(pcm) + 1, np.int64)
    sounding = np.flatnonzero(pcm)
    reach = SR // 10  # 100 ms
    np.add.at(near, np.clip(sounding - reach, 0, len(pcm)), 1)
    np.add.at(near, np.clip(sounding + reach + 1, 0, len(pcm)), -1)
    far = np.cumsum(near[:-1]) == 0
    assert far.sum() > 10 * SR
    assert not decoded[far].any()


def test_sound_at_both_ends_is_kept(encoded: tuple[Samples, Path]) -> None:
    decoded = decode(encoded[1])
    assert np.abs(decoded[: SR // 100]).max() > 1000  # the first 10 ms
    assert np.abs(decoded[-SR // 100 :]).max() > 1000  # the last 10 ms


@pytest.mark.parametrize(
    "n_samples",
    # ffmpeg's decoder gives 529 samples too many for tracks under 47 samples, whoever encodes.
    [47, 575, 576, 577, 1104, 1105, 1106, 576 * 40 + 46, 576 * 40 + 47, 3 * SR + 575],
)
@pytest.mark.parametrize("content", ["silence", "sound at both ends"])
def test_decoded_length_is_exact(tmp_path: Path, n_samples: int, content: str) -> None:
    pcm = np.zeros(n_samples, np.int16)
    if content != "silence":
        pcm[: min(n_samples, 300)] = tone(min(n_samples, 300), 440, 5000)
        pcm[-min(n_samples, 300) :] = tone(min(n_samples, 300), 880, 5000)
    path = tmp_path / "t.mp3"
    write(path, pcm)
    decoded = decode(path)
    assert len(decoded) == n_samples
    assert np.array_equal(decoded, whole_track_encode(pcm))
    assert read_track_info(path).duration_ms == round(n_samples * 1000 / SR)


def test_all_silence_is_the_silent_frame_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoders = []
    original = export._Mp3Format.encoder

    def counted(self: export._Mp3Format) -> object:
        encoders.append(self)
        return original(self)

    monkeypatch.setattr(export._Mp3Format, "encoder", counted)
    n = 10 * 60 * SR
    path = tmp_path / "t.mp3"
    write(path, np.zeros(n, np.int16), sizes=(10 * SR,))
    assert len(encoders) == 1  # only to learn what LAME's silent frames look like
    decoded = decode(path)
    assert len(decoded) == n
    assert not decoded.any()
    data = path.read_bytes()
    pos = audio_start(data)
    sizes = frame_sizes(data, pos)
    assert len(sizes) == 1 + -(-(n + DELAY) // GRANULE)
    pos += sizes[0]
    for size in sizes[1:]:
        side_info = int.from_bytes(data[pos + 4 : pos + 13], "big")
        assert side_info >> 64 == 0  # main_data_begin: nothing from earlier frames
        assert (side_info >> 51) & 0xFFF == 0  # part2_3_length: no main data
        assert not any(data[pos + 13 : pos + size])
        pos += size


@pytest.mark.parametrize(("rate", "kbps"), [(16_000, 64), (24_000, 96), (SR, 96)])
def test_other_mpeg2_streams_take_the_island_path(tmp_path: Path, rate: int, kbps: int) -> None:
    assert export._Mp3Format(rate, kbps).islands_apply
    pcm = track()
    path = tmp_path / "t.mp3"
    write(path, pcm, rate=rate, kbps=kbps)
    decoded = decode(path, rate)
    assert len(decoded) == len(pcm)
    assert np.array_equal(decoded, whole_track_encode(pcm, rate, kbps))


@pytest.mark.parametrize(("rate", "kbps"), [(44_100, 64), (SR, 65), (SR, 48)])
def test_other_streams_go_to_ffmpeg(tmp_path: Path, rate: int, kbps: int) -> None:
    # MPEG-1 has two granules a frame; 65 kbps is no MPEG bitrate; a 48 kbps frame cannot
    # hold the Info and LAME tags. ffmpeg, as before, handles them.
    assert not export._Mp3Format(rate, kbps).islands_apply
    pcm = track(4 * SR)
    path = tmp_path / "t.mp3"
    write(path, pcm, rate=rate, kbps=kbps)
    assert b"Lavf" in path.read_bytes()[:8192]
    assert len(decode(path, rate)) == len(pcm)


# --- the bytes ----------------------------------------------------------------------


def test_same_bytes_whatever_the_chunking(encoded: tuple[Samples, Path], tmp_path: Path) -> None:
    pcm, path = encoded
    for i, sizes in enumerate([(len(pcm),), (GRANULE * 10,), (1009, 5, 44100), (SR * 10,)]):
        again = tmp_path / f"{i}.mp3"
        write(again, pcm, sizes=sizes)
        assert again.read_bytes() == path.read_bytes(), sizes


def test_single_sample_chunks_give_the_same_bytes(tmp_path: Path) -> None:
    pcm = track(2 * SR + 5)
    whole, singles = tmp_path / "whole.mp3", tmp_path / "singles.mp3"
    write(whole, pcm, sizes=(len(pcm),))
    write(singles, pcm, sizes=(1,))
    assert whole.read_bytes() == singles.read_bytes()


def test_info_frame_and_lame_tag(encoded: tuple[Samples, Path]) -> None:
    pcm, path = encoded
    data = path.read_bytes()
    start = audio_start(data)
    tag = export._parse_lame_tag(data[start : start + 4096])
    assert tag is not None
    sizes = frame_sizes(data, start)
    xing = start + 4 + 9
    assert data[xing : xing + 4] == b"Info"
    assert tag.frames == len(sizes) - 1 == -(-(len(pcm) + DELAY) // GRANULE)
    assert int.from_bytes(data[xing + 12 : xing + 16], "big") == len(data) - start  # bytes
    toc = data[xing + 16 : xing + 116]
    assert toc[0] == 0 and list(toc) == sorted(toc) and toc[-1] > 240
    assert (tag.delay, tag.n_samples) == (576, len(pcm))
    lame = start + tag.offset
    assert data[lame : lame + 4] == b"LAME"
    assert int.from_bytes(data[lame + 28 : lame + 32], "big") == len(data) - start  # music
    music_crc = int.from_bytes(data[lame + 32 : lame + 34], "big")
    assert music_crc == export._crc16(data[start + sizes[0] :])
    tag_crc = int.from_bytes(data[lame + 34 : lame + 36], "big")
    assert tag_crc == export._crc16(data[start : lame + 34])
    # mutagen honours the delay and padding of a LAME tag (only of one): the length is exact.
    assert getattr(MP3(path).info, "length", None) == len(pcm) / SR


@pytest.mark.skipif(ffprobe_path() is None, reason="ffprobe is not installed")
def test_ffprobe_duration_is_as_before(
    encoded: tuple[Samples, Path], ffmpeg_reference: Path
) -> None:
    pcm, path = encoded
    reference = ffmpeg_reference

    def duration(track: Path) -> float:
        probe = ffprobe_path()
        assert probe is not None
        command = [probe, "-v", "error", "-show_format", "-of", "json", str(track)]
        out = subprocess.run(command, capture_output=True, check=True).stdout
        return float(json.loads(out)["format"]["duration"])

    assert duration(path) == duration(reference)
    assert abs(duration(path) - len(pcm) / SR) < 0.08  # ffprobe counts whole frames


@pytest.mark.parametrize("n_bytes", [0, 1, 2, 3, 1000, 1001, 40_000, 40_001])
def test_music_crc_of_a_file_in_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_bytes: int
) -> None:
    monkeypatch.setattr(export, "_CRC_BLOCK_BYTES", 1 << 12)
    data = np.random.default_rng(n_bytes).integers(0, 256, n_bytes + 7, np.uint8).tobytes()
    path = tmp_path / "data"
    path.write_bytes(data)
    with path.open("rb") as f:
        assert export._crc16_of_file(f, 7, n_bytes + 7) == export._crc16(data[7:])


# --- choosing, failing, streaming ---------------------------------------------------


def test_unknown_encoder_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(export.ENCODER_ENV, "lamee")
    with pytest.raises(UserError, match="COACHTRACK_ENCODER"):
        write(tmp_path / "t.mp3", track(SR))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("encoder", ["lame", "ffmpeg"])
def test_interrupted_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoder: str
) -> None:
    monkeypatch.setenv(export.ENCODER_ENV, encoder)
    path = tmp_path / "t.mp3"
    path.write_bytes(b"the previous build")
    pcm = track()

    def interrupted() -> Iterator[Samples]:
        yield pcm[: len(pcm) // 2]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_track(
            path, interrupted(), n_samples=len(pcm), sample_rate=SR, info=info_for(len(pcm))
        )
    assert path.read_bytes() == b"the previous build"
    assert [p.name for p in tmp_path.iterdir()] == ["t.mp3"]


def test_too_many_samples_are_refused(tmp_path: Path) -> None:
    pcm = track()
    with pytest.raises(ValueError, match="samples"):
        write_track(tmp_path / "t.mp3", [pcm, pcm], n_samples=len(pcm), sample_rate=SR,
                    info=info_for(len(pcm)))  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_islands_are_streamed(tmp_path: Path) -> None:
    # 20 minutes: a 3 s burst every 15 s, silence between, in chunks of at most 10 s.
    burst = speechlike(np.random.default_rng(1), 3 * SR, 5000)
    silence = np.zeros(10 * SR, np.int16)
    minutes = 20

    def chunks() -> Iterator[Samples]:
        for _ in range(minutes * 4):
            yield burst
            yield silence
            yield silence[: 2 * SR]

    n = minutes * 60 * SR
    path = tmp_path / "t.mp3"
    tracemalloc.start()
    try:
        write_track(path, chunks(), n_samples=n, sample_rate=SR, info=info_for(n))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak
    assert read_track_info(path).duration_ms == minutes * 60_000


# --- in worker processes ------------------------------------------------------------


def children() -> set[int]:
    """This process's child processes, zombies included, from /proc (none without it)."""
    found: set[int] = set()
    if not Path("/proc/self/stat").exists():
        return found
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
    return found


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The pids of the encoder processes forked during the test, checked to be reaped after."""
    pids: list[int] = []
    original = export._fork_worker

    def spied(encoders: export._IslandEncoders, mask: set[int]) -> export._Worker | None:
        worker = original(encoders, mask)
        if worker is not None:
            pids.append(worker.pid)
        return worker

    monkeypatch.setattr(export, "_fork_worker", spied)
    before = children()
    yield pids
    for pid in pids:
        with pytest.raises(ChildProcessError):  # reaped: no zombie, nothing running
            os.waitpid(pid, os.WNOHANG)
    assert children() <= before


def use_processes(monkeypatch: pytest.MonkeyPatch, processes: int) -> None:
    monkeypatch.setattr(export, "_encoder_processes", lambda: processes)


@pytest.mark.parametrize(
    ("processes", "sizes"),
    [(1, (SR,)), (2, (len(track()),)), (2, (1009, 5, 44100)), (4, (GRANULE * 10,)), (4, (333,))],
)
def test_same_bytes_whatever_the_number_of_processes(
    encoded: tuple[Samples, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    forked: list[int],
    processes: int,
    sizes: tuple[int, ...],
) -> None:
    pcm, path = encoded
    use_processes(monkeypatch, processes)
    again = tmp_path / "t.mp3"
    write(again, pcm, sizes=sizes)
    assert again.read_bytes() == path.read_bytes()
    # Workers are forked as islands find the others busy, so how many depends on timing.
    assert len(forked) == 0 if processes == 1 else 1 <= len(forked) <= processes


def many_islands(seconds: int = 120) -> Samples:
    """A 1 s burst every 4 s: an island each, some loud, some quiet."""
    rng = np.random.default_rng(3)
    pcm = np.zeros(seconds * SR, np.int16)
    for i, start in enumerate(range(SR // 2, len(pcm) - SR, 4 * SR)):
        pcm[start : start + SR] = speechlike(rng, SR, 300 if i % 3 == 2 else 8000)
    return pcm


def test_tight_bounds_and_islands_done_out_of_order_keep_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: list[int]
) -> None:
    pcm = many_islands()
    use_processes(monkeypatch, 1)
    reference = tmp_path / "in-process.mp3"
    write(reference, pcm, sizes=(5 * SR,))
    assert forked == []
    # Three workers, the smallest pipes, no sound held in the writer, three islands at a
    # time; the first two islands are slow, so the third comes back first.
    use_processes(monkeypatch, 3)
    monkeypatch.setattr(export, "_PIPE_BYTES", 4096)
    monkeypatch.setattr(export, "_QUEUED_BYTES", 0)
    monkeypatch.setattr(export, "_ISLANDS_IN_FLIGHT", 3)
    original = export._IslandEncoders.close

    def close(self: export._IslandEncoders, island: int, end: int) -> bytes:
        if island < 2:
            time.sleep(0.2)
        return original(self, island, end)

    monkeypatch.setattr(export._IslandEncoders, "close", close)
    finished: list[int] = []
    receive = export._IslandWriter._receive

    def spied(self: export._IslandWriter, island: int, frames: bytes, last: bool) -> None:
        finished.extend([island] * last)
        receive(self, island, frames, last)

    monkeypatch.setattr(export._IslandWriter, "_receive", spied)
    parallel = tmp_path / "parallel.mp3"
    write(parallel, pcm, sizes=(5 * SR,))
    assert len(forked) == 3
    assert finished.index(2) < finished.index(0)
    assert len(finished) == len(set(finished)) > 25
    assert parallel.read_bytes() == reference.read_bytes()


def test_one_island_as_long_as_the_track_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: list[int], island_starts: list[int]
) -> None:
    # Ten minutes of sound without a gap, as under a music bed: one island, one worker.
    use_processes(monkeypatch, 2)
    opened = island_starts
    minutes, rng = 10, np.random.default_rng(5)
    second = (tone(SR, 220, 3000) + speechlike(rng, SR, 2000) // 2).astype(np.int16)
    n = minutes * 60 * SR
    path = tmp_path / "t.mp3"
    seen: list[tuple[int, int]] = []

    def chunks() -> Iterator[Samples]:
        for i in range(minutes * 60):
            if i == 6 * 60:  # the first minutes' frames are in the file by now
                (tmp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
                seen.append((tmp.stat().st_size, tracemalloc.get_traced_memory()[1]))
            yield second

    tracemalloc.start()
    try:
        write_track(path, chunks(), n_samples=n, sample_rate=SR, info=info_for(n))
    finally:
        tracemalloc.stop()
    assert (opened, len(forked)) == ([0], 1)
    ((written, peak),) = seen
    assert written > 3 * 60 * 64_000 // 8  # three minutes' worth at 64 kbps
    assert peak < 3 * 2**20, peak  # the sound on its way: 2 MB at most, and a chunk
    assert read_track_info(path).duration_ms == minutes * 60_000


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [KeyboardInterrupt, Boom])
def test_interrupted_with_workers_busy_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: list[int], error: type[BaseException]
) -> None:
    use_processes(monkeypatch, 2)
    original = export._IslandEncoders.feed

    def slow(self: export._IslandEncoders, island: int, granule: int, pcm: bytes) -> bytes:
        time.sleep(0.5)  # in the worker: busy when the writer is interrupted
        return original(self, island, granule, pcm)

    monkeypatch.setattr(export._IslandEncoders, "feed", slow)
    path = tmp_path / "t.mp3"
    path.write_bytes(b"the previous build")
    pcm = many_islands()

    def interrupted() -> Iterator[Samples]:
        yield pcm[: 30 * SR]
        raise error

    started = time.perf_counter()
    with pytest.raises(error):
        write_track(
            path, interrupted(), n_samples=len(pcm), sample_rate=SR, info=info_for(len(pcm))
        )
    assert time.perf_counter() - started < 1.5  # the workers were stopped, not waited for
    assert len(forked) == 2
    assert path.read_bytes() == b"the previous build"
    assert [p.name for p in tmp_path.iterdir()] == ["t.mp3"]


def test_ctrl_c_on_the_process_group_leaves_no_process_and_no_file(tmp_path: Path) -> None:
    # Ctrl-C in a terminal signals the whole process group: the writer and its workers.
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        import numpy as np
        from coachtrack import export
        from coachtrack.export import TrackInfo, write_track
        export._encoder_processes = lambda: 2
        rng = np.random.default_rng(0)
        n = 3600 * {SR}
        def chunks():
            for i in range(3600):
                if i == 20:
                    print("ready", flush=True)
                yield (rng.standard_normal({SR}) * 3000).astype(np.int16)
        path = Path(sys.argv[1]) / "t.mp3"
        path.write_bytes(b"the previous build")
        try:
            write_track(path, chunks(), n_samples=n, sample_rate={SR},
                        info=TrackInfo("t", "phone", "Fitness", "", "en", n * 1000 // {SR}, (), ()))
        except KeyboardInterrupt:
            sys.exit(130)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **FOREGROUND_JOB,
    )
    with killed_at_the_end(proc):
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(0.2)  # the workers encoding
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=10)
    assert (proc.returncode, stdout, stderr) == (130, b"", b"")
    assert (tmp_path / "t.mp3").read_bytes() == b"the previous build"
    assert [p.name for p in tmp_path.iterdir()] == ["t.mp3"]
    with pytest.raises(ProcessLookupError):  # nobody left in the group
        os.killpg(proc.pid, 0)


def test_a_failing_worker_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: list[int]
) -> None:
    use_processes(monkeypatch, 2)

    def failing(self: export._IslandEncoders, island: int, granule: int, pcm: bytes) -> bytes:
        raise RuntimeError("LAME's frame 7 is not where its padding cycle puts it")

    monkeypatch.setattr(export._IslandEncoders, "feed", failing)
    with pytest.raises(RuntimeError, match="MP3 encoder process: RuntimeError: LAME's frame 7"):
        write(tmp_path / "t.mp3", track())
    assert forked and list(tmp_path.iterdir()) == []


def test_a_worker_that_dies_is_a_build_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: list[int]
) -> None:
    use_processes(monkeypatch, 2)
    monkeypatch.setattr(export._IslandEncoders, "feed", lambda *_: os._exit(3))
    with pytest.raises(BuildError, match=r"encoder process stopped \(exit status 3\)"):
        write(tmp_path / "t.mp3", track())
    assert forked and list(tmp_path.iterdir()) == []


def test_without_fork_islands_are_encoded_in_process(
    encoded: tuple[Samples, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pcm, path = encoded
    use_processes(monkeypatch, 4)

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    again = tmp_path / "t.mp3"
    write(again, pcm, sizes=(1000, 7777, 333, 22050))
    assert again.read_bytes() == path.read_bytes()


def test_writing_from_a_forked_process_forks_its_own_workers(
    encoded: tuple[Samples, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `build --jobs` does: each track is written by a forked worker of its own.
    pcm, path = encoded
    use_processes(monkeypatch, 2)
    again = tmp_path / "t.mp3"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            write(again, pcm, sizes=(1000, 7777, 333, 22050))
            code = 0 if not children() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert again.read_bytes() == path.read_bytes()


# --- the true-peak check ------------------------------------------------------------


def decoded_peak_db(samples: Samples) -> float:
    from coachtrack import loudness

    return 20 * np.log10(loudness.true_peak(samples.astype(np.float64) / 32768))


def two_islands() -> Samples:
    """A quiet island, then one so loud that LAME's noise takes it over -3 dBTP."""
    rng = np.random.default_rng(11)
    pcm = np.zeros(12 * SR, np.int16)
    pcm[SR : 3 * SR] = speechlike(rng, 2 * SR, 1000)
    loud = speechlike(rng, 2 * SR, 9000)
    pcm[7 * SR : 9 * SR] = np.clip(loud, -23000, 23000)  # -3 dBFS on the samples
    return pcm


def free_and_checked(tmp_path: Path, pcm: Samples, ceiling_dbtp: float) -> tuple[Path, Path]:
    """The track written as it comes, and written with the true-peak check."""
    free, checked = tmp_path / "free.mp3", tmp_path / "checked.mp3"
    write(free, pcm)
    n = len(pcm)
    write_track(checked, chunked(pcm, (SR,)), n_samples=n, sample_rate=SR, info=info_for(n),
                true_peak_dbtp=ceiling_dbtp)  # fmt: skip
    return free, checked


@pytest.mark.parametrize("processes", [1, 2])
def test_an_island_decoding_over_the_ceiling_is_encoded_again_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: list[int], processes: int
) -> None:
    use_processes(monkeypatch, processes)
    free, checked = free_and_checked(tmp_path, two_islands(), -3.0)
    before, after = decode(free), decode(checked)
    quiet, loud = slice(0, 5 * SR), slice(5 * SR, len(before))
    over = decoded_peak_db(before[loud]) - -3.0
    assert over > 0  # the noise rode over the ceiling ...
    assert -4.0 < decoded_peak_db(after[loud]) <= -3.0 - 0.25  # ... and now it does not
    # Turned down by about what it was over, no more; the quiet island is as it was.
    energy = np.sum(after[loud].astype(float) ** 2) / np.sum(before[loud].astype(float) ** 2)
    assert -(over + 1.0) < 10 * np.log10(energy) < 0
    assert np.array_equal(after[quiet], before[quiet])
    assert read_track_info(checked).duration_ms == read_track_info(free).duration_ms


def test_an_island_whose_noise_does_not_fall_with_the_gain_is_still_brought_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A square wave at -0.97 dBTP: turned down 0.45 dB, LAME's copy decoded 0.4 dB lower
    # than before; a first attempt is not enough, and every attempt is measured.
    pcm = np.zeros(8 * SR, np.int16)
    t = np.arange(3 * SR // 2)
    pcm[SR : SR + len(t)] = np.sign(np.sin(2 * np.pi * 1759.4655 * t / SR)) * 21400
    measured: list[float] = []
    decoded_true_peak = export._decoded_true_peak

    def spied(frames: bytes, floor: float) -> float:
        measured.append(decoded_true_peak(frames, floor))
        return measured[-1]

    monkeypatch.setattr(export, "_decoded_true_peak", spied)
    use_processes(monkeypatch, 1)  # so that the spy sees the check
    _, checked = free_and_checked(tmp_path, pcm, -1.0)
    assert len(measured) >= 3
    room = -1.0 - export.TRUE_PEAK_ROOM_DB
    assert 20 * np.log10(measured[-1]) <= room < min(20 * np.log10(m) for m in measured[:-1])
    assert decoded_peak_db(decode(checked)) <= room + 0.05


def test_an_island_under_the_ceiling_keeps_its_bytes(tmp_path: Path) -> None:
    # The loudest island (clipped noise) decodes at -0.3 dBTP: well under +1.
    free, checked = free_and_checked(tmp_path, track(), 1.0)
    assert checked.read_bytes() == free.read_bytes()


def test_an_island_too_long_to_keep_streams_unchecked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "_CHECKED_ISLAND_BYTES", 4 * GRANULE * 2)
    free, checked = free_and_checked(tmp_path, two_islands(), -3.0)
    assert checked.read_bytes() == free.read_bytes()


@pytest.mark.parametrize("processes", [1, 2])
def test_a_track_with_an_island_too_long_to_keep_is_checked_whole_and_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    # A music bed makes the whole track one island, too long to keep: such a track was
    # left unchecked, and mastering kept LAME's whole margin under its ceiling (a gym
    # track with music landed 1.2 LU under its target). Now it is decoded once written.
    use_processes(monkeypatch, processes)
    monkeypatch.setattr(export, "_CHECKED_ISLAND_BYTES", 4 * GRANULE * 2)
    pcm = two_islands()
    n = len(pcm)
    gains: list[float] = []

    def again(gain: float) -> Iterator[Samples]:
        gains.append(gain)
        return export.quieter(chunked(pcm, (SR,)), gain)

    free, checked = tmp_path / "free.mp3", tmp_path / "checked.mp3"
    write(free, pcm)
    write_track(checked, chunked(pcm, (SR,)), n_samples=n, sample_rate=SR, info=info_for(n),
                true_peak_dbtp=-3.0, again=again)  # fmt: skip
    before, after = decode(free), decode(checked)
    over = decoded_peak_db(before) - -3.0
    assert over > 0 and gains and all(0 < g < 1 for g in gains)
    assert -4.5 < decoded_peak_db(after) <= -3.0 - export.TRUE_PEAK_ROOM_DB
    # The whole track is turned down, by about what it was over.
    energy = np.sum(after.astype(float) ** 2) / np.sum(before.astype(float) ** 2)
    assert -(over + 1.5) < 10 * np.log10(energy) < 0
    assert read_track_info(checked).duration_ms == read_track_info(free).duration_ms
    # Under its ceiling, it keeps its bytes and is mixed once.
    gains.clear()
    write_track(checked, chunked(pcm, (SR,)), n_samples=n, sample_rate=SR, info=info_for(n),
                true_peak_dbtp=1.0, again=again)  # fmt: skip
    assert checked.read_bytes() == free.read_bytes() and not gains


def test_a_file_is_decoded_for_its_check_as_in_one_read(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A file's decoder skips both delays first: reads must still end where frames do.
    # Read 3 s at a time from the start, mpg123 printed "part2_3_length (2432) too large
    # for available bit count" onto the terminal, 41 times for a 30-minute track.
    import soundfile

    from coachtrack import loudness

    rng = np.random.default_rng(5)
    pcm = np.zeros(60 * SR, np.int16)
    for k in range(6):
        pcm[(10 * k + 1) * SR : (10 * k + 4) * SR] = speechlike(rng, 3 * SR, 9000)
    path = tmp_path / "t.mp3"
    write(path, pcm)
    whole, _ = soundfile.read(path, dtype="float32")
    capfd.readouterr()
    trimmed = export._ENCODER_DELAY + export._DECODER_DELAY
    blocks = list(export._decoded(path, trimmed=trimmed))
    assert len(blocks) > 3 and np.allclose(np.concatenate(blocks), whole, rtol=0, atol=1e-6)
    meter = loudness.TruePeakMeter(0.1)
    meter.add(whole)
    assert export._decoded_true_peak(path, 0.1, trimmed=trimmed) == pytest.approx(meter.result())
    assert capfd.readouterr().err == ""
    list(export._decoded(path))  # not skipping them: the decoder complains
    assert "too large" in capfd.readouterr().err


def test_an_island_is_decoded_for_its_check_as_in_one_read() -> None:
    # libsndfile decodes MP3 wrongly when asked for part of a frame, and its frame count
    # is an estimate: the check reads whole frames, in a loop, and must see every sample.
    import io

    import soundfile

    from coachtrack import loudness

    stream = export._Mp3Format(SR, 64)
    island = export._Island(stream, export._Silence.of(stream), start=0)
    pcm = speechlike(np.random.default_rng(9), 12 * SR // GRANULE * GRANULE, 8000)
    island.feed(49, pcm.tobytes())
    frames = island.finish(49 + len(pcm) // GRANULE + 4)
    with soundfile.SoundFile(io.BytesIO(frames)) as decoded:
        whole = decoded.read(dtype="float32")
    assert len(whole) > 3 * export._CHECK_BLOCK
    assert np.array_equal(np.concatenate(list(export._decoded(frames))), whole)
    meter = loudness.TruePeakMeter(0.1)
    meter.add(whole)
    expected = meter.result()
    assert export._decoded_true_peak(frames, 0.1) == expected
