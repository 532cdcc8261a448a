"""Loudness to ITU-R BS.1770 / EBU R128, and a look-ahead peak limiter.

The track is handled as sparse "islands" of sound on a silent background, each
starting on the 100 ms block grid, so the integrated loudness of the islands is
that of the whole track (silent blocks fall under the absolute gate anyway).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import lfilter, resample_poly

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
        stage = lfilter(self.b1, self.a1, audio.astype(np.float64))
        return np.asarray(lfilter(self.b2, self.a2, stage), dtype=np.float64)


class LoudnessMeter:
    """Integrated loudness of a track fed as islands on the 100 ms grid."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.block = block_samples(rate)
        self.k = KWeighting.for_rate(rate)
        self.energy: dict[int, float] = defaultdict(float)  # sub-block index -> sum of squares

    def add(self, start: int, audio: npt.NDArray[np.floating]) -> None:
        """Feed the sound at sample `start` (a multiple of the block size)."""
        if start % self.block:
            raise ValueError("islands must start on the 100 ms grid")
        weighted = self.k.apply(audio)
        pad = (-len(weighted)) % self.block
        squares = np.square(np.concatenate([weighted, np.zeros(pad)]))
        sums = squares.reshape(-1, self.block).sum(axis=1)
        first = start // self.block
        for i in np.flatnonzero(sums):
            self.energy[first + int(i)] += float(sums[i])

    def integrated(self, total: int | None = None) -> float:
        """Gated integrated loudness in LUFS (-inf for silence) of a track `total` samples long."""
        last = math.inf if total is None else total // self.block - 4
        starts = sorted({j - k for j in self.energy for k in range(4) if 0 <= j - k <= last})
        window = 4 * self.block
        powers = np.array([sum(self.energy.get(j + k, 0.0) for k in range(4)) for j in starts])
        powers = powers / window
        with np.errstate(divide="ignore"):
            loud = -0.691 + 10 * np.log10(powers)
        gated = powers[loud > ABSOLUTE_GATE_LUFS]
        if not len(gated):
            return -math.inf
        relative = -0.691 + 10 * math.log10(float(gated.mean())) + RELATIVE_GATE_LU
        kept = gated[-0.691 + 10 * np.log10(gated) > relative]
        return -0.691 + 10 * math.log10(float(kept.mean()))


def integrated_loudness(
    islands: Iterable[tuple[int, npt.NDArray[np.floating]]], rate: int, total: int | None = None
) -> float:
    """Integrated loudness (LUFS) of islands `(start, audio)` on a silent background."""
    meter = LoudnessMeter(rate)
    for start, audio in islands:
        meter.add(start, audio)
    return meter.integrated(total)


def true_peak(audio: npt.NDArray[np.floating]) -> float:
    """Peak of the 4x oversampled signal, as a linear amplitude (BS.1770 annex 2)."""
    if not len(audio):
        return 0.0
    over = resample_poly(audio.astype(np.float64), 4, 1)
    return float(max(np.max(np.abs(over)), np.max(np.abs(audio))))


def limit(audio: npt.NDArray[np.floating], ceiling: float, window: int) -> Audio:
    """Brick-wall look-ahead limiter: no sample above `ceiling`, gain moves over `window`."""
    level = np.abs(audio).astype(np.float64)
    if not len(audio) or level.max() <= ceiling:
        return audio.astype(np.float32)
    wanted = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    # Each averaged value is a minimum over a span containing this sample, so the
    # smoothed gain never exceeds what this sample needs.
    gain = uniform_filter1d(minimum_filter1d(wanted, size=2 * window + 1), size=window + 1)
    return np.asarray(audio * gain, dtype=np.float32)


def db_to_gain(db: float) -> float:
    """Decibels to a linear factor."""
    return float(10 ** (db / 20))
