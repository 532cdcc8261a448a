"""The music bed's file: damaged samples, and memory that follows the track, not the file."""

from __future__ import annotations

import errno
import io
import re
import subprocess
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from coachtrack import loudness, mastering, mixer, music
from coachtrack.errors import BuildError, UserError
from coachtrack.profiles import GYM
from coachtrack.timeline import Chapter, Event, Timeline

RATE = 22050


def tone(seconds: float, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def float_wav(path: Path, audio: np.ndarray, rate: int = 44100) -> Path:
    sf.write(path, audio, rate, subtype="FLOAT")
    return path


def peak_bytes(work: Callable[[], Any]) -> int:
    """The most memory (numpy's included) `work` held at once, over what it started with."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def decoded(path: Path, max_seconds: float | None = None) -> np.ndarray:
    """The music `load_music` keeps of a file, all of it, in memory."""
    kept = music.load_music(path, RATE, max_seconds)
    return kept.read(0, len(kept))


def track_under(bed: mixer.MusicBed, seconds: int) -> mixer.Mixer:
    """A track of `seconds` with a spoken line in it, and `bed` under all of it."""
    duration = RATE * seconds
    events = (Event("music", 0, duration, sound="music"),
              Event("speech", RATE, RATE + RATE // 2, text="a"))  # fmt: skip
    timeline = Timeline("t", "T", "gym", "en", RATE, duration, events,
                        (Chapter("c", 0, duration),))  # fmt: skip
    clips = {"a": tone(0.5, freq=300.0)}
    return mixer.Mixer(timeline, clips, {}, GYM, bed)


# --- samples that are not numbers ---


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_sample_that_is_not_a_number_is_silence(tmp_path: Path, bad: float) -> None:
    audio = tone(3.0, 44100)
    audio[1000] = bad
    loaded = decoded(float_wav(tmp_path / "m.wav", audio))
    assert np.isfinite(loaded).all()
    assert np.max(np.abs(loaded)) <= 0.51  # no full-scale click where it was
    # The rest is the tone, as without the bad sample (the resampler spreads it a little).
    clean = audio.copy()
    clean[1000] = 0.0
    expected = decoded(float_wav(tmp_path / "clean.wav", clean))
    away = np.abs(np.arange(len(loaded)) - 500) > 100
    assert np.array_equal(loaded[away], expected[away])


def test_a_track_builds_over_music_with_a_nan_sample(tmp_path: Path) -> None:
    # A NaN made the track's loudness NaN: mastering gave up and the mix was left
    # without its sounds (KeyError: 'start', a traceback).
    audio = tone(3.0, 44100)
    audio[1000] = np.nan
    loaded = music.load_music(float_wav(tmp_path / "m.wav", audio), RATE)
    bed = mixer.MusicBed(loaded, rate=RATE, duration=RATE * 8, level_db=0, duck_db=10)
    mix = track_under(bed, 8)
    mastered, result = mastering.master(mix, release=True)
    parts = mixer.islands(mix.timeline, music=True)
    pcm = np.concatenate(list(mixer.pcm_chunks(mastered, parts, result.ceiling)))
    assert len(pcm) == RATE * 8 and np.any(pcm)


def test_music_of_nothing_but_nans_is_refused(tmp_path: Path) -> None:
    path = float_wav(tmp_path / "m.wav", np.full(44100 * 2, np.nan, np.float32))
    with pytest.raises(UserError, match="holds no sound"):
        music.load_music(path, RATE)


def test_a_file_that_is_no_music_is_refused_with_the_decoders_reason(tmp_path: Path) -> None:
    path = tmp_path / "m.mp3"
    path.write_bytes(b"not music at all" * 100)
    with pytest.raises(UserError, match=r"cannot decode this music file: .+"):
        music.load_music(path, RATE)


def test_the_quick_check_refuses_what_the_whole_decode_would(tmp_path: Path) -> None:
    # `probe_music` runs before any speech; `load_music` only after planning.
    text, empty = tmp_path / "text.mp3", tmp_path / "empty.mp3"
    text.write_bytes(b"not music at all" * 100)
    empty.write_bytes(b"")
    with pytest.raises(UserError, match=r"cannot decode this music file: .+"):
        music.probe_music(text, RATE)
    with pytest.raises(UserError, match=r"empty.mp3: --music: the music file is empty$"):
        music.probe_music(empty, RATE)
    video = tmp_path / "video.mp4"  # pictures only: ffmpeg's reason was "add a trailing '?'"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=1:size=32x32",
                    "-c:v", "mpeg4", str(video)], check=True)  # fmt: skip
    with pytest.raises(UserError, match=r"--music: the file has no sound in it to play"):
        music.probe_music(video, RATE)
    no_samples = tmp_path / "none.wav"
    sf.write(no_samples, np.zeros(0, np.float32), RATE)  # a header and nothing after it
    with pytest.raises(UserError, match="holds no sound"):
        music.probe_music(no_samples, RATE)
    with pytest.raises(UserError, match="no such music file"):
        music.probe_music(tmp_path / "missing.mp3", RATE)
    # Under a second is too short for any track; a second is enough for the check.
    with pytest.raises(UserError, match="holds no sound"):
        music.probe_music(float_wav(tmp_path / "m.wav", tone(0.99, 44100)), RATE)
    music.probe_music(float_wav(tmp_path / "m.wav", tone(1.0, 44100)), RATE)


# --- memory that follows the track, not the file ---


def long_wav(tmp_path: Path, seconds: int = 60) -> Path:
    path = tmp_path / "long.wav"
    sf.write(path, tone(seconds), RATE, subtype="PCM_16")
    return path


def test_only_what_the_track_can_use_is_decoded(tmp_path: Path) -> None:
    path = long_wav(tmp_path)
    whole = decoded(path)
    head = decoded(path, max_seconds=2.5)
    assert len(head) == round(2.5 * RATE)
    assert np.array_equal(head, whole[: len(head)])
    # A file shorter than the limit is decoded as it was without one.
    assert np.array_equal(decoded(path, max_seconds=90), whole)


def test_decoded_music_is_kept_on_disk_not_in_memory(tmp_path: Path) -> None:
    # The decoder's output was held in memory, once at best: a 3-hour track over an
    # hour-long mix took 1.3 GB. It goes to an unnamed file beside the outputs, read a
    # stretch at a time, and nothing of it is left in the folder.
    path = long_wav(tmp_path, seconds=240)
    size = RATE * 240 * 4
    out = tmp_path / "out"
    out.mkdir()
    assert peak_bytes(lambda: music.load_music(path, RATE, folder=out)) < 0.25 * size
    kept = music.load_music(path, RATE, folder=out)
    assert len(kept) == RATE * 240 and list(out.iterdir()) == []
    assert np.array_equal(kept.read(RATE, RATE + 5), decoded(path)[RATE : RATE + 5])
    assert len(kept.read(len(kept) - 3, len(kept) + 10)) == 3


def test_a_full_disk_while_keeping_the_music_is_a_build_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    real = tempfile.TemporaryFile

    def temporary(*args: Any, dir: Any = None, **kwargs: Any) -> Any:
        return Full() if dir is not None else real(*args, **kwargs)

    monkeypatch.setattr(music.tempfile, "TemporaryFile", temporary)
    path = long_wav(tmp_path)
    message = f"{path}: cannot keep the decoded music in {tmp_path}: No space left on device"
    with pytest.raises(BuildError, match=re.escape(message)):
        music.load_music(path, RATE, folder=tmp_path)


@pytest.mark.parametrize("seconds", [5, 25])  # shorter than the music, and looped
def test_a_bed_plays_music_kept_on_disk_as_it_would_from_memory(
    tmp_path: Path, seconds: int
) -> None:
    path = long_wav(tmp_path, seconds=10)
    beds = [
        mixer.MusicBed(source, rate=RATE, duration=RATE * seconds, level_db=-2, duck_db=8)
        for source in (music.load_music(path, RATE), decoded(path))
    ]
    spans = ((RATE, RATE * 2), (RATE * 4, RATE * 9))
    for start, end in ((0, RATE * seconds), (RATE * 3 - 5, RATE * 3 + 7), (RATE * 4, RATE * 5)):
        on_disk, in_memory = (bed.render(start, end, spans) for bed in beds)
        assert np.array_equal(on_disk, in_memory)
    assert beds[0].lufs() == beds[1].lufs()


def test_music_that_cannot_be_kept_is_a_build_error_naming_the_file(tmp_path: Path) -> None:
    path = long_wav(tmp_path)
    with pytest.raises(BuildError, match=re.escape(f"{path}: cannot keep the decoded music")):
        music.load_music(path, RATE, folder=tmp_path / "no such folder")


def test_music_silent_as_far_as_the_track_plays_is_refused_so(tmp_path: Path) -> None:
    audio = tone(8.0)
    audio[: RATE * 5] = 0.0
    path = tmp_path / "late.wav"
    sf.write(path, audio, RATE, subtype="FLOAT")
    with pytest.raises(UserError, match="no sound in its first 3 s, all that the track plays"):
        music.load_music(path, RATE, max_seconds=3)
    assert len(decoded(path, max_seconds=6)) == RATE * 6


def test_a_bed_as_long_as_the_track_keeps_only_what_it_plays() -> None:
    audio = tone(30.0)
    bed = mixer.MusicBed(audio, rate=RATE, duration=RATE * 5, level_db=0, duck_db=10)
    assert len(bed.played()) == RATE * 5
    assert np.array_equal(bed.played(), audio[: RATE * 5])  # played once: no loop crossfade
    out = bed.render(RATE * 4, RATE * 5 - 1, ())
    assert np.all(np.abs(out) <= np.abs(audio[RATE * 4 : RATE * 5 - 1]) + 1e-7)
    # Shorter music still loops as it did.
    short = mixer.MusicBed(audio[: RATE * 2], rate=RATE, duration=RATE * 5, level_db=0,
                           duck_db=10)  # fmt: skip
    assert np.array_equal(short.played(), mixer.seamless_loop(audio[: RATE * 2], RATE))


def test_long_music_under_a_short_track_costs_what_the_track_does() -> None:
    # Mastering measured the whole file's loudness: 5.5 GB for an hour under 33 s.
    def master(seconds: int) -> int:
        noise = np.random.default_rng(3).standard_normal(RATE * seconds).astype(np.float32)
        bed = mixer.MusicBed(noise * 0.1, rate=RATE, duration=RATE * 6, level_db=0, duck_db=10)
        return peak_bytes(lambda: mastering.master(track_under(bed, 6)))

    assert master(120) < 1.5 * master(7)


def test_a_track_under_music_as_long_as_itself_renders_in_flat_memory() -> None:
    # The bed is measured, mastered and mixed a stretch at a time: four times the track
    # (and the music) is not four times the memory. Measured in one piece up to 10
    # minutes, the music's loudness took 4 times as much for 4 minutes as for 1.
    def render(seconds: int) -> int:
        noise = np.random.default_rng(6).standard_normal(RATE * seconds).astype(np.float32)
        bed = mixer.MusicBed(noise * 0.1, rate=RATE, duration=RATE * seconds, level_db=0,
                             duck_db=10)  # fmt: skip

        def work() -> None:
            mix = track_under(bed, seconds)
            mastered, result = mastering.master(mix)
            parts = mixer.islands(mix.timeline, music=True)
            for _ in mixer.pcm_chunks(mastered, parts, result.ceiling):
                pass

        return peak_bytes(work)

    assert render(240) < 1.5 * render(60)


def test_the_beds_loudness_is_that_of_its_music_measured_in_stretches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    noise = np.random.default_rng(5).standard_normal(RATE * 7).astype(np.float32) * 0.1
    noise[RATE * 3 :] *= 0.3  # louder, then quieter: the gating sees both
    bed = mixer.MusicBed(noise, rate=RATE, duration=RATE * 7, level_db=0, duck_db=10)
    whole = loudness.integrated_loudness([(0, bed.played())], RATE, len(bed.played()))
    assert bed.lufs() == whole  # in one piece: as measured before, to the bit
    monkeypatch.setattr(mixer, "MEASURE_SECONDS", 2)
    assert bed.lufs() == pytest.approx(whole, abs=1e-9)
    small = peak_bytes(bed.lufs)
    monkeypatch.setattr(mixer, "MEASURE_SECONDS", 600)
    assert small < 0.5 * peak_bytes(bed.lufs)


# --- not memory enough ---


def test_no_memory_to_decode_is_a_build_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exhausted(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(music, "_decode", exhausted)
    path = long_wav(tmp_path)
    with pytest.raises(
        BuildError, match=re.escape(f"{path}: not enough memory to decode this music")
    ):
        music.load_music(path, RATE)


def test_no_memory_to_measure_is_a_build_error_naming_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def exhausted(*args: object) -> None:
        raise MemoryError

    bed = mixer.MusicBed(tone(3.0), rate=RATE, duration=RATE * 5, level_db=0, duck_db=10,
                         source="songs/ambient.mp3")  # fmt: skip
    monkeypatch.setattr(loudness, "bin_energy", exhausted)
    with pytest.raises(
        BuildError, match=re.escape("songs/ambient.mp3: not enough memory to measure")
    ):
        bed.lufs()
