"""Small signal-processing kernels in plain numpy.

scipy.signal takes most of a second just to import, and coachtrack needs four
things from it. These are exact enough for the job: the IIR filters used here
decay far below float precision within their impulse-response length, so they
are applied as FFT convolutions with that response.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float64]
Biquad = tuple[float, float, float, float, float, float]  # b0 b1 b2 a0 a1 a2
IMPULSE_SAMPLES = 8192  # long enough for every filter below to ring out (< 1e-12)

# Elliptic low-pass, order 8, 0.05 dB ripple, 70 dB stop band, edge 9 kHz at
# 22.05 kHz: just under the MP3 encoder's own low-pass. Designed with
# scipy.signal.ellip(8, 0.05, 70, 9000, output="sos", fs=22050).
ENCODER_BAND_22050: tuple[Biquad, ...] = (
    (
        0.2553314335403806,
        0.5077296185075117,
        0.25533143354038057,
        1.0,
        0.6027653550774305,
        0.15819025021619343,
    ),
    (1.0, 1.9187682771632624, 1.0000000000000002, 1.0, 1.1781107876521748, 0.5843635223306349),
    (1.0, 1.847249418036225, 1.0000000000000002, 1.0, 1.511466398143414, 0.8355056965305212),
    (1.0, 1.8101084594758325, 1.0, 1.0, 1.657400572038391, 0.9563128135963581),
)


@functools.cache
def impulse_response(sections: tuple[Biquad, ...], n: int = IMPULSE_SAMPLES) -> Float:
    """The first `n` samples of a cascade of biquads' response to a unit impulse."""
    signal = [1.0] + [0.0] * (n - 1)
    for b0, b1, b2, a0, a1, a2 in sections:
        b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
        out, x1, x2, y1, y2 = [], 0.0, 0.0, 0.0, 0.0
        for x in signal:
            y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            out.append(y)
            x2, x1, y2, y1 = x1, x, y1, y
        signal = out
    return np.asarray(signal)


def convolve(x: npt.NDArray[np.floating], ir: Float) -> Float:
    """Causal filtering of `x` by `ir`, with the tail: `len(x) + len(ir) - 1` samples."""
    n = len(x) + len(ir) - 1
    if len(x) >= CONVOLVE_IN_BLOCKS_FROM:
        return _convolve_in_blocks(x, ir)
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(x.astype(np.float64), size) * np.fft.rfft(ir, size)
    return np.fft.irfft(spectrum, size)[:n]


# Longer signals are filtered in blocks (overlap-save): a minute of music bed in one
# transform of 2 million points took 0.13 s, several times what blocks of 32 768 take.
CONVOLVE_IN_BLOCKS_FROM = 1 << 18


def _convolve_in_blocks(x: npt.NDArray[np.floating], ir: Float) -> Float:
    """`convolve`, a block at a time: each transform brings in `len(ir) - 1` samples before
    its block, and keeps only the block."""
    m = len(ir)
    size = 4 << (m - 1).bit_length()
    step = size - (m - 1)
    n = len(x) + m - 1
    blocks = -(-n // step)
    padded = np.zeros(blocks * step + m - 1)
    padded[m - 1 : m - 1 + len(x)] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, size)[::step]
    spectra = np.fft.rfft(frames, axis=1)
    spectra *= np.fft.rfft(ir, size)
    return np.fft.irfft(spectra, size, axis=1)[:, m - 1 :].ravel()[:n]


def filtered(sections: Sequence[Biquad], x: npt.NDArray[np.floating]) -> Float:
    """`x` through a biquad cascade, cut to the length of `x`."""
    if not len(x):
        return np.zeros(0)
    return convolve(x, impulse_response(tuple(sections)))[: len(x)]


def oversampled(x: npt.NDArray[np.floating], factor: int = 4) -> Float:
    """Band-limited interpolation by `factor` (zero-padded spectrum): `factor * len(x)` samples."""
    pad = 64  # silence on both sides, so the circular transform does not wrap sound around
    padded = np.concatenate([np.zeros(pad), x.astype(np.float64), np.zeros(pad)])
    size = 1 << (len(padded) - 1).bit_length()
    spectrum = np.fft.rfft(padded, size)
    up = np.fft.irfft(spectrum, size * factor) * factor
    return up[pad * factor : (pad + len(x)) * factor]


def running_min(x: Float, size: int) -> Float:
    """Minimum over a centred window of `size` (odd) samples, in O(n) (van Herk / Gil-Werman)."""
    half = size // 2
    n = len(x)
    blocks = -(-(n + 2 * half) // size)
    padded = np.full(blocks * size + size, np.inf)
    padded[half : half + n] = x
    grid = padded[: blocks * size].reshape(blocks, size)
    prefix = np.minimum.accumulate(grid, axis=1).ravel()
    suffix = np.minimum.accumulate(grid[:, ::-1], axis=1)[:, ::-1].ravel()
    # The window starting at i spans [i, i + size): suffix from i, prefix up to i + size - 1.
    starts = np.arange(n)
    return np.minimum(suffix[starts], prefix[starts + size - 1])


def moving_average(x: Float, size: int) -> Float:
    """Mean over a centred window of `size` samples, the edges repeating the end values."""
    half = size // 2
    padded = np.concatenate([np.full(half, x[0]), x, np.full(size - half, x[-1])])
    cum = np.concatenate([[0.0], np.cumsum(padded)])
    return np.asarray((cum[size : size + len(x)] - cum[: len(x)]) / size, dtype=np.float64)


def spectrum(x: npt.NDArray[np.floating], size: int, *, axis: int = -1) -> npt.NDArray[Any]:
    """`np.fft.rfft(x, size, axis=axis)`, in the precision of `x`.

    numpy 2 computes a forward transform with its default scaling in double precision
    whatever the input (it passes the factor 1 as a Python integer, which selects the
    double loop): 3.6 times the time for float32 (measured on numpy 2.4, 65 536 points:
    1.18 ms against 0.33 ms). Asked to scale by 1/size instead, it stays in the input's
    precision; the scale is then undone.
    """
    out = np.fft.rfft(x, size, axis=axis, norm="forward")
    out *= size
    return out


@functools.cache
def frequency_response(sections: tuple[Biquad, ...], size: int) -> npt.NDArray[np.complex64]:
    """A biquad cascade's response at the `size // 2 + 1` bins of a real FFT of `size`."""
    # The impulse response has died away long before `size`, so its transform is the response.
    return np.fft.rfft(impulse_response(sections), size).astype(np.complex64)


def forget_responses() -> None:
    """Drop the cached frequency responses and ramps (megabytes each for long sounds)."""
    frequency_response.cache_clear()
    fraction_ramp.cache_clear()


@functools.cache
def _smooth_sizes() -> npt.NDArray[np.int64]:
    # Powers of two and three times them: fast transforms, and few enough distinct
    # sizes that the filters' responses can be kept for each.
    sizes = sorted(m << a for a in range(31) for m in (1, 3))
    return np.asarray(sizes, dtype=np.int64)


def fast_size(n: int) -> int:
    """The smallest FFT size >= n of the form 2^a or 3 * 2^a (fast, and shared)."""
    sizes = _smooth_sizes()
    return int(sizes[np.searchsorted(sizes, n)])


@functools.lru_cache(maxsize=16)
def fraction_ramp(size: int, factor: int) -> npt.NDArray[np.complex64]:
    """Multiplying a real FFT of `size` by this advances the signal by 1/factor of a sample."""
    bins = np.arange(size // 2 + 1)
    return np.asarray(np.exp(2j * np.pi * bins / (factor * size)), dtype=np.complex64)


def segments(mask: npt.NDArray[np.bool_], reach: int) -> list[tuple[int, int]]:
    """Stretches `[a, b)` covering every True sample and `reach` samples either side, merged."""
    hits = np.flatnonzero(mask)
    if not len(hits):
        return []
    breaks = np.flatnonzero(np.diff(hits) > 2 * reach) + 1
    starts, ends = hits[np.r_[0, breaks]], hits[np.r_[breaks - 1, len(hits) - 1]]
    n = len(mask)
    return [
        (max(0, int(a) - reach), min(n, int(b) + reach + 1))
        for a, b in zip(starts, ends, strict=True)
    ]


def db(gain: float) -> float:
    """A linear factor in decibels."""
    return 20 * math.log10(gain) if gain > 0 else -math.inf
