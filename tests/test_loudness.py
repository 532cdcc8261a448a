"""The BS.1770 meter and the limiter, on small known signals."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from coachtrack import dsp, loudness

RATE = 22050


def sine(freq: float, amplitude: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("amplitude", [1.0, 0.1, 0.01])
def test_1khz_sine_reads_3_lu_under_its_peak(amplitude: float) -> None:
    # EBU Tech 3341: a 1 kHz sine at 0 dBFS peak reads -3.01 LUFS.
    measured = loudness.integrated_loudness([(0, sine(1000, amplitude, 5))], RATE, RATE * 5)
    assert measured == pytest.approx(20 * math.log10(amplitude) - 3.01, abs=0.05)


def test_islands_measure_like_the_whole_track() -> None:
    tone, gap = sine(1000, 0.1, 2.0), 3 * RATE
    whole = np.zeros(2 * len(tone) + gap + RATE, dtype=np.float32)
    whole[: len(tone)] = tone
    whole[len(tone) + gap : 2 * len(tone) + gap] = tone
    as_one = loudness.integrated_loudness([(0, whole)], RATE, len(whole))
    as_islands = loudness.integrated_loudness(
        [(0, tone), (len(tone) + gap, tone)], RATE, len(whole)
    )
    assert as_islands == pytest.approx(as_one, abs=1e-3)  # filter tails restart per island


def test_sounds_may_start_anywhere_and_bin_like_the_whole_track() -> None:
    tone = sine(700, 0.3, 1.3)
    whole = np.zeros(RATE * 6, dtype=np.float32)
    whole[1234 : 1234 + len(tone)] = tone
    whole[77777 : 77777 + len(tone)] += tone
    as_one = loudness.integrated_loudness([(0, whole)], RATE, len(whole))
    placed = loudness.integrated_loudness([(1234, tone), (77777, tone)], RATE, len(whole))
    assert placed == pytest.approx(as_one, abs=1e-3)


def test_a_sound_fed_a_stretch_at_a_time_measures_as_in_one_piece() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.1, RATE * 7) * np.repeat(rng.uniform(0, 1, 70), RATE // 10)
    as_one = loudness.integrated_loudness([(0, noise)], RATE, len(noise))
    meter = loudness.LoudnessMeter(RATE, len(noise))
    for start in range(0, len(noise), 12_345):  # stretches that split blocks
        meter.feed(noise[start : start + 12_345])
    meter.end()
    assert meter.integrated() == pytest.approx(as_one, abs=1e-9)


def test_silence_is_minus_infinity() -> None:
    assert loudness.integrated_loudness([(0, np.zeros(RATE))], RATE, RATE) == -math.inf


def test_true_peak_envelope_bounds_the_oversampled_signal() -> None:
    t = np.arange(4000)
    x = np.sin(2 * np.pi * t / 4 + np.pi / 4).astype(np.float32)
    env = loudness.true_peak_envelope(x)
    # each inter-sample peak is credited to the sample before it
    assert env.shape == x.shape and np.maximum(env[:-1], env[1:])[100:-100].min() > 0.95
    assert (env >= np.abs(x)).all()


def test_true_peak_levels_follow_the_envelope_in_windows() -> None:
    # Band-limited noise, as a music bed is: within 0.005 of the one-transform envelope,
    # never under the samples themselves; quiet windows keep their sample levels.
    n = RATE * 30 + 123
    spectrum = np.fft.rfft(np.random.default_rng(8).standard_normal(n) * 0.3)
    spectrum[np.fft.rfftfreq(n, 1 / RATE) > 9000] = 0
    x = np.fft.irfft(spectrum, n).astype(np.float32)
    x[RATE * 10 : RATE * 20] *= 0.1  # a quiet stretch
    exact = loudness.true_peak_envelope(x)
    levels = loudness.true_peak_levels(x)
    assert levels.shape == x.shape and (levels >= np.abs(x)).all()
    assert np.abs(levels - exact).max() < 0.005
    floored = loudness.true_peak_levels(x, floor=0.5)
    quiet = slice(RATE * 10 + 500, RATE * 20 - 500)
    assert np.array_equal(floored[quiet], np.abs(x[quiet]).astype(np.float64))
    loud = np.abs(x) > 0.6
    assert np.array_equal(floored[loud], levels[loud])
    assert len(loudness.true_peak_levels(np.zeros(0, np.float32))) == 0


def test_a_long_signal_is_filtered_in_blocks_as_in_one_transform() -> None:
    ir = loudness.KWeighting.for_rate(RATE).sections()
    x = np.random.default_rng(9).standard_normal(dsp.CONVOLVE_IN_BLOCKS_FROM + 54321)
    ir_samples = dsp.impulse_response(tuple(ir))
    size = 1 << (len(x) + len(ir_samples) - 2).bit_length()
    whole = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir_samples, size), size)
    blocks = dsp.convolve(x, ir_samples)
    assert len(blocks) == len(x) + len(ir_samples) - 1
    assert np.allclose(blocks, whole[: len(blocks)], rtol=0, atol=1e-12)


def test_limiter_holds_the_ceiling_and_leaves_quiet_audio_alone() -> None:
    quiet = np.array([0.1, -0.2, 0.3, 0.0, -0.1], dtype=np.float32)
    assert np.array_equal(loudness.limit(quiet, 0.5, 2), quiet)
    loud = sine(200, 1.0, 0.5) * np.float32(1.5)
    out = loudness.limit(loud, 0.5, 66)
    assert np.max(np.abs(out)) <= 0.5 + 1e-6
    assert np.max(np.abs(out)) > 0.45  # not squashed further than needed


def test_true_peak_sees_between_samples() -> None:
    # A sine at a quarter of the rate, sampled off its peaks, hides its true height.
    t = np.arange(4000)
    x = np.sin(2 * np.pi * t / 4 + np.pi / 4).astype(np.float32)
    assert np.max(np.abs(x)) == pytest.approx(0.7071, abs=1e-3)
    assert loudness.true_peak(x) > 0.95


def test_limiter_works_only_around_the_overs_yet_matches_a_whole_pass() -> None:
    # The reference: the smoothed running minimum over the whole signal at once.
    from coachtrack import dsp

    rng = np.random.default_rng(3)
    level = np.abs(rng.standard_normal(20000)) * 0.2
    level[[500, 520, 9000, 19990]] = [0.9, 0.7, 2.0, 1.2]  # a few overs, one at the end
    ceiling, window = 0.6, 88
    wanted = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    whole = dsp.moving_average(dsp.running_min(wanted, 2 * window + 1), window + 1)
    gains = loudness.limiter_gain(level, ceiling, window)
    assert gains is not None
    assert np.allclose(gains, whole, rtol=0, atol=1e-9)  # running sums round differently
    assert (level * gains <= ceiling + 1e-12).all()


def true_peak_above(x: npt.NDArray[np.float32], floor: float) -> float:
    """The meter's answer for a signal given whole."""
    meter = loudness.TruePeakMeter(floor)
    meter.add(x)
    return meter.result()


def test_true_peak_above_a_floor_is_the_true_peak_where_it_tops_the_floor() -> None:
    rng = np.random.default_rng(2)
    spectrum = np.fft.rfft(rng.standard_normal(30_001))
    spectrum[int(len(spectrum) * 0.8) :] = 0  # band-limited, as a decoder's output is
    x = (np.fft.irfft(spectrum, 30_001) * 0.3).astype(np.float32)
    assert true_peak_above(x, 0.0) == pytest.approx(loudness.true_peak(x), rel=1e-4)
    # A quarter-rate sine sampled off its peaks: 0.707 on the samples, 1 between them.
    t = np.arange(4000)
    hidden = np.sin(2 * np.pi * t / 4 + np.pi / 4).astype(np.float32)
    exact = loudness.true_peak(hidden)
    assert exact > 0.99 and true_peak_above(hidden, 0.5) == pytest.approx(exact, rel=1e-4)
    # Under the floor, the samples' own peak stands: nothing is interpolated.
    assert true_peak_above(hidden, 0.8) == pytest.approx(0.7071, abs=1e-4)
    assert true_peak_above(np.zeros(0, np.float32), 0.0) == 0.0


def test_true_peak_meter_gives_the_same_peak_whatever_the_blocks() -> None:
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(20_000) * 0.2).astype(np.float32)
    whole = true_peak_above(x, 0.3)
    for size in (1, 100, 447, 448, 449, 5000):
        meter = loudness.TruePeakMeter(0.3)
        for start in range(0, len(x), size):
            meter.add(x[start : start + size])
        assert meter.result() == pytest.approx(whole, rel=1e-6), size
