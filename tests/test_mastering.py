"""Mastering's per-sound analysis: grouped true peaks and energies agree with the meter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coachtrack import dsp, loudness, mastering

RATE = 22050


def speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    noise = rng.standard_normal(n) * np.sin(np.linspace(0, 9 * np.pi, n)) ** 2
    return (noise * 0.2).astype(np.float32)


def test_grouped_envelope_holds_each_groups_true_peak() -> None:
    # A low tone, swelling: no hiss, so the envelope is the true peak itself.
    t = np.arange(int(1.3 * RATE))
    audio = (0.5 * np.sin(2 * np.pi * 300 * t / RATE) * np.sin(np.pi * t / len(t))).astype(
        np.float32
    )
    sound = mastering._prepare(audio, RATE)
    band = sound.audio()  # the band-limited sound the envelope describes
    exact = loudness.true_peak_envelope(band)
    padded = np.zeros(len(sound.envelope) * mastering.GROUP)
    padded[: len(exact)] = exact
    per_group = padded.reshape(-1, mastering.GROUP).max(axis=1)
    envelope = sound.envelope.astype(np.float64)
    # float16 storage and 16-bit band samples: agreement to a few parts in a thousand
    assert np.allclose(envelope[5:-5], per_group[5:-5], rtol=3e-3, atol=2e-4)
    assert sound.peak == pytest.approx(float(envelope.max()), rel=1e-3)


def test_hiss_looks_louder_to_the_limiter() -> None:
    rng = np.random.default_rng(5)
    n = RATE
    hum = 0.3 * np.sin(2 * np.pi * 200 * np.arange(n) / RATE)
    hiss = np.diff(rng.standard_normal(n + 1), 2, append=[0.0])[:n] * 0.05  # mostly high
    audio = np.concatenate([hum, hiss]).astype(np.float32)
    sound = mastering._prepare(audio, RATE)
    band = sound.audio()
    true = loudness.true_peak_envelope(band)
    half = len(sound.envelope) // 2
    seen = sound.envelope.astype(np.float64)
    hum_lift = seen[200 : half - 200].max() / true[800 : n - 800].max()
    hiss_lift = seen[half + 200 : -200].max() / true[n + 800 : -800].max()
    assert hum_lift == pytest.approx(1.0, abs=0.02)
    assert 20 * np.log10(hiss_lift) > mastering.DEESS_DB * 0.6


def test_grouped_energies_bin_like_the_meter() -> None:
    audio = speechlike(2.0, 2)
    sound = mastering._prepare(audio, RATE)
    total, block = RATE * 6, loudness.block_samples(RATE)
    grouped = np.zeros(total // block + 2)
    exact = loudness.LoudnessMeter(RATE, total)
    cum = loudness.cumulative(sound.squares.astype(np.float32))
    for start in (0, 777, RATE * 3 + 13):
        mastering._bin_groups(grouped, start, cum, block)
        exact.add(start, sound.audio())
    assert loudness.gated_loudness(grouped, block, total) == pytest.approx(
        exact.integrated(), abs=0.01
    )
    loud = exact.energy > exact.energy.max() * 1e-3
    assert np.allclose(grouped[loud], exact.energy[loud], rtol=0.02)


def test_fraction_ramp_interpolates_between_samples() -> None:
    n = 4000
    x = np.sin(2 * np.pi * 1000 * np.arange(n) / RATE).astype(np.float32)
    size = dsp.fast_size(2 * n)
    half = np.fft.irfft(np.fft.rfft(x, size) * dsp.fraction_ramp(size, 2), size)[:n]
    expected = np.sin(2 * np.pi * 1000 * (np.arange(n) + 0.5) / RATE)
    assert np.allclose(half[200:-200], expected[200:-200], atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spectrum_is_the_real_transform_in_the_inputs_precision(dtype: type) -> None:
    x = speechlike(0.5, 7).astype(dtype)
    size = dsp.fast_size(len(x) + 100)
    expected = np.fft.rfft(x.astype(np.float64), size)
    got = dsp.spectrum(x, size)
    assert np.allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":  # numpy 1 transforms in double only
        assert got.dtype == np.result_type(dtype, np.complex64)
    rows = np.stack([x[:300], x[300:600]])
    assert np.allclose(dsp.spectrum(rows, 400), np.fft.rfft(rows.astype(np.float64), 400),
                       rtol=0, atol=1e-5 * np.abs(expected).max())  # fmt: skip


def test_releasing_the_raw_sounds_changes_nothing_but_memory() -> None:
    from coachtrack import mixer
    from coachtrack.profiles import GYM
    from coachtrack.timeline import Chapter, Event, Timeline

    clip = (speechlike(1.0, 4) * 3).clip(-1, 1)
    events = [Event("speech", RATE * (1 + 2 * i), RATE * (2 + 2 * i), text="a") for i in range(4)]
    tl = Timeline("t", "T", "gym", "en", RATE, RATE * 10, tuple(events), (Chapter("c", 0, 10),))
    kept = mixer.Mixer(tl, {"a": clip}, {}, GYM)
    clips = {"a": clip.copy()}
    released = mixer.Mixer(tl, clips, {}, GYM)
    a, result_a = mastering.master(kept)
    b, result_b = mastering.master(released, release=True)
    assert clips == {}  # let go of, by the mix and by whoever made it
    assert result_a == result_b
    assert np.array_equal(a.render(0, tl.duration), b.render(0, tl.duration))


def test_a_mix_too_quiet_to_measure_keeps_its_sounds_even_released() -> None:
    # Under the absolute gate the loudness is -inf: the unreleased mix used to be handed
    # back as it was, which had let go of its sounds (a KeyError when rendered).
    from coachtrack import mixer
    from coachtrack.profiles import GYM
    from coachtrack.timeline import Chapter, Event, Timeline

    clip = speechlike(1.0, 5) * 1e-3  # about -78 dBFS: under the gate, above 16-bit silence
    events = (Event("speech", RATE, 2 * RATE, text="a"),)
    tl = Timeline("t", "T", "gym", "en", RATE, RATE * 5, events, (Chapter("c", 0, 5),))
    mastered, result = mastering.master(mixer.Mixer(tl, {"a": clip}, {}, GYM), release=True)
    assert result.measured_lufs == -np.inf and result.gain == 1.0
    heard = mastered.render(0, tl.duration)
    assert np.any(heard[RATE : 2 * RATE]) and not np.any(heard[: RATE - 100])


def test_an_unreachable_loudness_stops_short_and_stays_finite() -> None:
    # Lone clicks: the limiter holds each one; only raising the silence between them
    # could make them loud, and the gain stops well before that.
    from coachtrack import mixer
    from coachtrack.profiles import GYM
    from coachtrack.timeline import Chapter, Event, Timeline

    clip = np.zeros(RATE, dtype=np.float32)
    clip[::2205] = 0.5
    events = [Event("speech", RATE * (1 + 2 * i), RATE * (2 + 2 * i), text="a") for i in range(4)]
    tl = Timeline("t", "T", "gym", "en", RATE, RATE * 10, tuple(events), (Chapter("c", 0, 10),))
    mastered, result = mastering.master(mixer.Mixer(tl, {"a": clip}, {}, GYM))
    assert np.isfinite(result.gain) and result.gain <= 10 ** (mastering.MAX_GAIN_DB / 20)
    assert result.measured_lufs < GYM.loudness_lufs
    pcm = np.concatenate(list(mixer.pcm_chunks(mastered, mixer.islands(tl), result.ceiling)))
    audio = pcm.astype(np.float32) / 32768
    assert np.abs(audio).max() > 0.1  # not silenced
    assert 20 * np.log10(loudness.true_peak(audio)) <= GYM.true_peak_dbtp


def test_a_track_that_cannot_be_made_loud_enough_says_so(tmp_path: Path) -> None:
    from coachtrack import build
    from coachtrack.loader import load_routine
    from coachtrack.profiles import GYM

    routine = load_routine(Path(__file__).parent / "data" / "short.yaml")
    track = build.routine_track(routine, GYM, build.BuildOptions(out_dir=tmp_path))
    at = 10 ** (-3 / 20)  # the limiter's level
    assert build.quiet_note(track, -14.3, ceiling=at) is None
    assert build.quiet_note(track, float("-inf"), ceiling=at) is None
    note = build.quiet_note(track, -15.2, ceiling=at)
    assert note is not None and str(track.path) in note
    assert note.endswith(
        "reaches -15.2 LUFS, under the gym profile's -14: the limiter holds its sounds' peaks "
        "to -3.0 dBFS (the -1 dBTP ceiling, less a margin for the encoder)"
    )
    # Under music it says where the bed is set, and whether it could play any louder.
    note = build.quiet_note(track, -15.2, ceiling=at, bed=(-0.5, False))
    assert note is not None and note.endswith(
        "its voice's and the music's peaks to -3.0 dBFS (the -1 dBTP ceiling, less a margin "
        "for the encoder), and the bed is set 0.5 LU under the target where nobody speaks, "
        "so music with softer peaks plays louder"
    )
    note = build.quiet_note(
        track, -15.2, ceiling=at, bed=(GYM.music_level_db + mastering.MAX_BED_RISE_DB, True)
    )
    assert note is not None and note.endswith(
        "the bed is set 1.5 LU over the target where nobody speaks (the most it may)"
    )


class _BendingSolver:
    """Loudness that bends over as the gain rises: its slope is 0.6 * e^-((g - 10) / 5) LU/dB."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.seen: dict[float, float] = {}

    def loudness_at(self, gain_db: float) -> tuple[float, dict[object, object]]:
        self.asked.append(gain_db)
        self.seen[gain_db] = -13.0 - 3.0 * float(np.exp(-(gain_db - 10.0) / 5.0))
        return self.seen[gain_db], {}

    def slope(self, low_db: float, high_db: float) -> float:  # as the real one: known points kept
        def at(gain_db: float) -> float:
            return self.seen[gain_db] if gain_db in self.seen else self.loudness_at(gain_db)[0]

        return (at(high_db) - at(low_db)) / (high_db - low_db)


def _slope(solver: _BendingSolver, gain_db: float) -> float:
    return solver.loudness_at(gain_db)[0] - solver.loudness_at(gain_db - 1)[0]


def test_the_gain_stops_where_more_would_mostly_feed_the_limiter() -> None:
    solver = _BendingSolver()
    high = (26.0, solver.loudness_at(26.0))
    low = (25.0, solver.loudness_at(25.0)[0])
    gain_db, _ = mastering._at_knee(solver, low, high)  # type: ignore[arg-type]
    # Where the slope is KNEE_LU_PER_DB: 10 + 5 ln 6 dB here, give or take a dB.
    assert gain_db == pytest.approx(10 + 5 * np.log(6), abs=1.0)
    assert _slope(solver, gain_db) == pytest.approx(mastering.KNEE_LU_PER_DB, abs=0.03)


def test_a_gain_still_on_the_slope_is_kept_as_it_is() -> None:
    solver = _BendingSolver()
    high = (12.0, solver.loudness_at(12.0))
    low = (11.0, solver.loudness_at(11.0)[0])
    solver.asked.clear()
    assert mastering._at_knee(solver, low, high)[0] == 12.0  # type: ignore[arg-type]
    assert solver.asked == []  # the solve's own last two points told


def test_a_spoken_line_is_faded_in_and_out_not_cut_mid_wave() -> None:
    # espeak-ng ends many lines dead, mid-wave: mastered as it is, that is a click.
    t = np.arange(int(0.8 * RATE)) / RATE
    line = (0.5 * np.sin(2 * np.pi * 310 * t + 1.0)).astype(np.float32)
    plain = mastering._prepare(line, RATE).audio()
    spoken = mastering._prepare(line, RATE, spoken=True).audio()
    assert abs(plain[-1]) > 0.1  # the cut, as espeak-ng leaves it
    edge = round(mastering.SPEECH_FADE_OUT_MS * RATE / 1000)
    assert np.max(np.abs(spoken[-20:])) < 0.01 and np.max(np.abs(spoken[:5])) < 0.05
    assert np.all(np.abs(np.diff(spoken[-edge:])) < 0.05)  # a ramp, not a step
    middle = slice(len(line) // 4, 3 * len(line) // 4)
    assert np.allclose(spoken[middle], plain[middle], atol=1e-3)  # the rest as it was
