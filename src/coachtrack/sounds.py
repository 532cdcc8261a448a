"""Chimes, beeps and ticks, synthesized: no sound files to ship."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from coachtrack.profiles import ChimeSet

Audio = npt.NDArray[np.float32]
SOUND_NAMES = ("start", "end", "hold-start", "hold-end", "tick")
TAIL_SHARE = 0.3  # of a bell's length, faded out at its end


def _envelope(n: int, rate: int, attack_s: float, decay_s: float) -> npt.NDArray[np.float64]:
    t = np.arange(n) / rate
    attack = np.clip(t / attack_s, 0.0, 1.0)
    attack = 0.5 - 0.5 * np.cos(np.pi * attack)  # raised cosine: no click
    env = attack * np.exp(-t / decay_s)
    # Fade the last TAIL_SHARE to exact zero, so the sound ends in digital silence as a
    # ringing bell dies away: cut in its last 10 ms, it stopped 26 to 31 dB under its
    # peak, a ring heard to break off in a quiet room.
    tail = min(n, max(int(0.01 * rate), int(TAIL_SHARE * n)))
    env[n - tail :] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, tail + 1) / tail)
    return env


def bell(
    rate: int,
    freq: float,
    *,
    seconds: float,
    level: float,
    partials: Sequence[tuple[float, float]] = ((1.0, 1.0), (2.76, 0.35), (5.40, 0.12)),
    attack_s: float = 0.004,
    decay_s: float = 0.3,
) -> Audio:
    """A struck bell: a few inharmonic partials, each dying away exponentially."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for ratio, amp in partials:
        # Higher partials fade faster, as in a real bell.
        out += amp * np.sin(2 * np.pi * freq * ratio * t) * np.exp(-t * (ratio - 1) * 2.0)
    out *= _envelope(n, rate, attack_s, decay_s)
    return np.asarray(out / np.max(np.abs(out)) * level, dtype=np.float32)


def beep(rate: int, freq: float, *, seconds: float, level: float) -> Audio:
    """A bright electronic beep: a tone with a little third harmonic, flat envelope."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    tone = np.sin(2 * np.pi * freq * t) + 0.25 * np.sin(2 * np.pi * 3 * freq * t)
    env = np.minimum(1.0, np.minimum(t / 0.005, (t[-1] - t) / 0.01))
    out = tone * np.clip(env, 0.0, 1.0)
    return np.asarray(out / np.max(np.abs(out)) * level, dtype=np.float32)


def sequence(rate: int, parts: Sequence[Audio], gap_s: float) -> Audio:
    """Sounds one after another with `gap_s` of silence between their onsets' ends."""
    gap = np.zeros(int(gap_s * rate), dtype=np.float32)
    pieces: list[Audio] = []
    for i, part in enumerate(parts):
        if i:
            pieces.append(gap)
        pieces.append(part)
    return np.concatenate(pieces)


def sound_set(chimes: ChimeSet, rate: int) -> dict[str, Audio]:
    """Every sound a profile uses, by name."""
    if chimes == "bell":
        # A soft bell. Levels here are relative within a set: mastering brings the set to
        # its profile's `chime_lufs` against the loudness target.
        return {
            "start": sequence(rate, [bell(rate, 660, seconds=0.5, level=0.135),
                                     bell(rate, 880, seconds=1.0, level=0.135)], 0.0),
            "end": sequence(rate, [bell(rate, 880, seconds=0.5, level=0.135),
                                   bell(rate, 660, seconds=1.2, level=0.135)], 0.0),
            "hold-start": bell(rate, 880, seconds=0.9, level=0.125),
            "hold-end": bell(rate, 660, seconds=1.0, level=0.125),
            "tick": bell(rate, 1760, seconds=0.09, level=0.18, partials=((1.0, 1.0),),
                         attack_s=0.001, decay_s=0.02),
        }  # fmt: skip
    if chimes == "soft-bell":
        # Low and gentle: slow attack, no bright partials, nothing that could startle.
        low = ((1.0, 1.0), (2.0, 0.15))
        return {
            "start": bell(rate, 392, seconds=1.6, level=0.30, partials=low, attack_s=0.03,
                          decay_s=0.5),
            "end": sequence(rate, [bell(rate, 392, seconds=0.8, level=0.30, partials=low,
                                        attack_s=0.03, decay_s=0.4),
                                   bell(rate, 294, seconds=1.8, level=0.30, partials=low,
                                        attack_s=0.03, decay_s=0.6)], 0.0),
            "hold-start": bell(rate, 392, seconds=1.3, level=0.28, partials=low, attack_s=0.03,
                               decay_s=0.4),
            "hold-end": bell(rate, 294, seconds=1.5, level=0.28, partials=low, attack_s=0.03,
                             decay_s=0.45),
            "tick": bell(rate, 440, seconds=0.12, level=0.10, partials=low, attack_s=0.01,
                         decay_s=0.03),
        }  # fmt: skip
    return {
        "start": sequence(rate, [beep(rate, 880, seconds=0.12, level=0.5),
                                 beep(rate, 1320, seconds=0.25, level=0.5)], 0.06),
        "end": sequence(rate, [beep(rate, 1320, seconds=0.12, level=0.5),
                               beep(rate, 880, seconds=0.3, level=0.5)], 0.06),
        "hold-start": beep(rate, 1320, seconds=0.25, level=0.5),
        "hold-end": sequence(rate, [beep(rate, 1760, seconds=0.12, level=0.5),
                                    beep(rate, 1760, seconds=0.12, level=0.5)], 0.08),
        "tick": beep(rate, 1000, seconds=0.08, level=0.4),
    }  # fmt: skip
