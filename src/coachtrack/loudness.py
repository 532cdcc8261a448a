"""Loudness to ITU-R BS.1770 / EBU R128, and a look-ahead peak limiter.

The track is handled as sparse "islands" of sound on a silent background, each
starting on the 100 ms block grid, so the integrated loudness of the islands is
that of the whole track (silent blocks fall under the absolute gate anyway).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from coachtrack import dsp

Audio = npt.NDArray[np.float32]
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


def block_samples(rate: int) -> int:
    """Samples in one 100 ms sub-block: the grid islands start on."""
    return rate // 10


@dataclass(frozen=True, slots=True)
class KWeighting:
    """The two biquads of BS.1770's K-weighting, for any sample rate (as libebur128 does)."""

    b1: tuple[float, float, float]
    a1: tuple[float, float, float]
    b2: tuple[float, float, float]
    a2: tuple[float, float, float]

    def sections(self) -> tuple[dsp.Biquad, dsp.Biquad]:
        """Both stages as biquads (b0 b1 b2 a0 a1 a2)."""
        return ((*self.b1, *self.a1), (*self.b2, *self.a2))

    @classmethod
    def for_rate(cls, rate: int) -> KWeighting:
        """Coefficients derived from the analog prototypes at `rate`."""
        f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
        k = math.tan(math.pi * f0 / rate)
        vh = 10 ** (gain_db / 20)
        vb = vh**0.4996667741545416
        a0 = 1 + k / q + k * k
        b1 = ((vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0)
        a1 = (1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0)
        f0, q = 38.13547087602444, 0.5003270373238773
        k = math.tan(math.pi * f0 / rate)
        d = 1 + k / q + k * k
        a2 = (1.0, 2 * (k * k - 1) / d, (1 - k / q + k * k) / d)
        return cls(b1, a1, (1.0, -2.0, 1.0), a2)

    def apply(self, audio: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """K-weighted copy of `audio`, from a silent start."""
        return dsp.filtered(self.sections(), audio)


def cumulative(squares: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Running sums of squared samples, from 0: what `bin_cumulative` takes."""
    return np.concatenate([[0.0], np.cumsum(squares, dtype=np.float64)])


def bin_cumulative(
    energy: npt.NDArray[np.float64], start: int, cum: npt.NDArray[np.float64], block: int
) -> None:
    """Add a sound placed at sample `start` (as running sums) into per-block energies."""
    n = min(len(cum) - 1, len(energy) * block - start)
    if n <= 0:
        return
    first, last = start // block, (start + n - 1) // block
    edges = np.arange(first, last + 2) * block - start
    np.clip(edges, 0, n, out=edges)
    energy[first : last + 1] += cum[edges[1:]] - cum[edges[:-1]]


def bin_energy(
    energy: npt.NDArray[np.float64], start: int, squares: npt.NDArray[np.floating], block: int
) -> None:
    """Add squared samples placed at sample `start` into per-block energy sums, in place."""
    bin_cumulative(energy, start, cumulative(squares), block)


def gated_loudness(energy: npt.NDArray[np.float64], block: int, total: int) -> float:
    """Integrated loudness (LUFS, -inf for silence) from K-weighted energy per 100 ms block."""
    whole = total // block  # gating blocks lie wholly inside the track
    if whole < 4:
        return -math.inf
    powers = np.convolve(energy[:whole], np.ones(4), "valid") / (4 * block)
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10 * np.log10(powers)
    gated = powers[loud > ABSOLUTE_GATE_LUFS]
    if not len(gated):
        return -math.inf
    relative = -0.691 + 10 * math.log10(float(gated.mean())) + RELATIVE_GATE_LU
    kept = gated[-0.691 + 10 * np.log10(gated) > relative]
    return -0.691 + 10 * math.log10(float(kept.mean()))


class LoudnessMeter:
    """Integrated loudness of a track of `total` samples, fed sound by sound.

    Energy is binned into 100 ms blocks; sounds may start anywhere. Sounds that do
    not overlap in time add their energies, so each clip need be weighted only once.
    """

    def __init__(self, rate: int, total: int) -> None:
        self.rate = rate
        self.total = total
        self.block = block_samples(rate)
        self.k = KWeighting.for_rate(rate)
        self.energy = np.zeros(total // self.block + 2)
        self._fed = 0  # samples `feed` has taken, and the last of them the filter remembers
        self._memory: npt.NDArray[np.float64] = np.zeros(0)

    def weighted_squares(self, audio: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Squared K-weighted samples of a sound, with its filter tail (100 ms) after it."""
        padded = np.concatenate([audio.astype(np.float64), np.zeros(self.block)])
        return np.square(self.k.apply(padded))

    def add(self, start: int, audio: npt.NDArray[np.floating]) -> None:
        """Feed a stretch of sound that starts at sample `start`."""
        bin_energy(self.energy, start, self.weighted_squares(audio), self.block)

    def feed(self, audio: npt.NDArray[np.floating]) -> None:
        """Feed the next stretch of one long sound, from sample 0 on.

        Each stretch is K-weighted with the filter's memory of the sound before it, so a
        sound fed a stretch at a time measures as if weighted in one piece (to rounding),
        while the transforms stay small (an hour in one piece took 5 GB). `end()` adds the
        filter's tail after the last stretch.
        """
        piece = np.concatenate([self._memory, np.asarray(audio, dtype=np.float64)])
        weighted = self.k.apply(piece)[len(self._memory) :]
        bin_energy(self.energy, self._fed, np.square(weighted), self.block)
        self._fed += len(audio)
        self._memory = piece[-(dsp.IMPULSE_SAMPLES - 1) :]

    def end(self) -> None:
        """The filter's tail (100 ms) after the last stretch `feed` took."""
        self.feed(np.zeros(self.block))

    def integrated(self) -> float:
        """Gated integrated loudness in LUFS (-inf for silence)."""
        return gated_loudness(self.energy, self.block, self.total)


def integrated_loudness(
    sounds: Iterable[tuple[int, npt.NDArray[np.floating]]], rate: int, total: int
) -> float:
    """Integrated loudness (LUFS) of sounds `(start, audio)` on a silent track `total` long."""
    meter = LoudnessMeter(rate, total)
    for start, audio in sounds:
        meter.add(start, audio)
    return meter.integrated()


def true_peak_envelope(audio: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """For each sample, the highest level the 4x oversampled signal reaches around it."""
    x = audio.astype(np.float64)
    if not len(x):
        return x
    over = np.abs(dsp.oversampled(x, 4)).reshape(len(x), 4)
    return np.asarray(np.maximum(over.max(axis=1), np.abs(x)), dtype=np.float64)


def true_peak_levels(
    audio: npt.NDArray[np.floating], *, floor: float = 0.0
) -> npt.NDArray[np.float64]:
    """`true_peak_envelope`, quickly, for long sound: interpolated in windows of
    `TRUE_PEAK_WINDOW` samples with `_TRUE_PEAK_CONTEXT` either side, as `TruePeakMeter`
    measures, to within 0.005 of full scale on band-limited sound (a minute of music
    bed in one transform took 0.5 s and 300 MB). Windows whose samples all stay under
    `floor` keep their sample levels.
    """
    level = np.abs(np.asarray(audio, dtype=np.float64))
    n = len(level)
    if not n:
        return level
    width, context, factor = TRUE_PEAK_WINDOW, _TRUE_PEAK_CONTEXT, 4
    windows = -(-n // width)
    padded = np.zeros(windows * width + 2 * context, dtype=np.float32)
    padded[context : context + n] = audio
    out = np.zeros(windows * width)
    out[:n] = level
    by_window = out.reshape(windows, width)  # a view: filled in place
    loud = np.flatnonzero(by_window.max(axis=1) > floor)
    for first in range(0, len(loud), _TRUE_PEAK_BATCH):
        batch = loud[first : first + _TRUE_PEAK_BATCH]
        between = _between_samples(padded, batch, factor)
        by_window[batch] = np.maximum(by_window[batch], between)
    return out[:n]


def _between_samples(
    padded: npt.NDArray[np.float32], windows: npt.NDArray[np.intp], factor: int
) -> npt.NDArray[np.float32]:
    """For each sample of the given windows (`TRUE_PEAK_WINDOW` samples each, after
    `_TRUE_PEAK_CONTEXT` of `padded`), the highest level the signal reaches in the
    `factor - 1` points interpolated after it."""
    width, context = TRUE_PEAK_WINDOW, _TRUE_PEAK_CONTEXT
    size = width + 2 * context
    spectra = dsp.spectrum(padded[(windows * width)[:, None] + np.arange(size)], size)
    step = dsp.fraction_ramp(size, factor)
    peaks = np.zeros((len(windows), width), dtype=np.float32)
    for _ in range(factor - 1):
        spectra *= step  # 1/factor of a sample on
        between = np.fft.irfft(spectra, size, axis=1)[:, context : context + width]
        np.maximum(peaks, np.abs(between), out=peaks)
    return peaks


def true_peak(audio: npt.NDArray[np.floating]) -> float:
    """Peak of the 4x oversampled signal, as a linear amplitude (BS.1770 annex 2)."""
    if not len(audio):
        return 0.0
    return float(np.max(true_peak_envelope(audio)))


# Band-limited sound was not seen to rise more than this between samples (decoded MP3
# speech: 4 dB): windows whose samples stay this far under a ceiling are not interpolated.
INTERPOLATE_WITHIN_DB = 6.0
TRUE_PEAK_WINDOW = 448  # samples judged together; with the context, a 576-point transform
_TRUE_PEAK_CONTEXT = 64  # samples either side, so the window's edges are interpolated well
_TRUE_PEAK_BATCH = 512  # windows transformed at a time (2.4 MB of spectra)


class TruePeakMeter:
    """`true_peak` of a signal that comes in blocks, wherever it tops `floor`, quickly.

    Only windows whose sample peak is over `floor` are interpolated: elsewhere the
    sample peak stands, so the answer is exact wherever it matters when `floor` sits
    far enough under the level of interest (decoded MP3 speech rose up to 4 dB between
    samples, measured on the shipped routines). A few windows are held at a time.
    """

    def __init__(self, floor: float, *, factor: int = 4) -> None:
        self.floor, self.factor = floor, factor
        self.peak = 0.0
        self._held = np.zeros(_TRUE_PEAK_CONTEXT, np.float32)  # silence before the signal

    def add(self, block: npt.NDArray[np.float32]) -> None:
        """Take the next samples; measure the windows that now have their context."""
        width, context = TRUE_PEAK_WINDOW, _TRUE_PEAK_CONTEXT
        held = np.concatenate((self._held, np.asarray(block, dtype=np.float32)))
        windows = (len(held) - 2 * context) // width
        if windows > 0:
            self._measure(held[: windows * width + 2 * context], windows)
            held = held[windows * width :]
        self._held = held

    def result(self) -> float:
        """The peak, once the signal has ended (silence after it)."""
        width, context = TRUE_PEAK_WINDOW, _TRUE_PEAK_CONTEXT
        rest = len(self._held) - context
        if rest > 0:
            windows = -(-rest // width)
            padded = np.zeros(windows * width + 2 * context, dtype=np.float32)
            padded[: len(self._held)] = self._held
            self._measure(padded, windows)
            self._held = padded[windows * width :]
        return self.peak

    def _measure(self, padded: npt.NDArray[np.float32], windows: int) -> None:
        """The peak of `windows` windows, with `_TRUE_PEAK_CONTEXT` samples either side."""
        width, context = TRUE_PEAK_WINDOW, _TRUE_PEAK_CONTEXT
        peaks = np.abs(padded[context : context + windows * width]).reshape(windows, width).max(1)
        self.peak = max(self.peak, float(peaks.max()))
        loud = np.flatnonzero(peaks > self.floor)
        if len(loud):
            self.peak = max(self.peak, float(_between_samples(padded, loud, self.factor).max()))


def limiter_gain(
    level: npt.NDArray[np.float64], ceiling: float, window: int
) -> npt.NDArray[np.float64] | None:
    """Per-sample gain keeping `level` under `ceiling`, moving smoothly over `window` samples.

    None when no sample needs it.
    """
    if not len(level) or level.max() <= ceiling:
        return None
    # Each averaged value is a minimum over a span containing this sample, so the
    # smoothed gain never exceeds what this sample needs. Both windows reach 1.5
    # `window` samples, so only the stretches around samples over the ceiling move;
    # padded by more than that, they are worked on end to end in one pass, no window
    # seeing from one into the next.
    spans = dsp.segments(level > ceiling, limiter_reach(window))
    smooth = smooth_gain(np.concatenate([level[a:b] for a, b in spans]), ceiling, window)
    gain = np.ones(len(level))
    at = 0
    for a, b in spans:
        gain[a:b] = smooth[at : at + b - a]
        at += b - a
    return gain


def limiter_reach(window: int) -> int:
    """How far either side of a sample over the ceiling the limiter's gain moves."""
    return 2 * window + 2


def smooth_gain(
    level: npt.NDArray[np.float64], ceiling: float, window: int
) -> npt.NDArray[np.float64]:
    """The limiter's gain over stretches of `level`, each padded by `limiter_reach` or more.

    The stretches may be joined end to end: with that padding, where the gain moves
    no window sees from one into the next.
    """
    wanted = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    return dsp.moving_average(dsp.running_min(wanted, 2 * window + 1), window + 1)


def limit(
    audio: npt.NDArray[np.floating],
    ceiling: float,
    window: int,
    level: npt.NDArray[np.float64] | None = None,
) -> Audio:
    """Brick-wall look-ahead limiter on `level` (default: the samples themselves)."""
    if level is None:
        level = np.abs(audio).astype(np.float64)
    gain = limiter_gain(level, ceiling, window)
    if gain is None:
        return audio.astype(np.float32)
    return np.asarray(audio * gain, dtype=np.float32)


def db_to_gain(db: float) -> float:
    """Decibels to a linear factor."""
    return float(10 ** (db / 20))
