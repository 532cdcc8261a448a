"""Bring a track to its profile's loudness with its true peaks under the ceiling.

Each distinct sound (a spoken line, a chime) is band-limited to what the encoder
keeps, and limited on its own true-peak envelope; the voice's gain is then found
from the energy each placed sound contributes to the 100 ms loudness blocks.
Chimes and a music bed play at levels of their own, set against the loudness
target (`Profile.chime_lufs`, `music_level_db`). Nothing renders the track: the
cost is that of the distinct sounds, not of its length.

The gain solve works on groups of `GROUP` samples (each group's highest true peak
and its summed K-weighted energy), which keeps it fast and a sound's solver data
to a quarter of its samples; the limiter's gain is constant within a group, so the
finished sound is what the solver weighed. The limiter sees hiss as louder than it
is (de-essing), and limited sounds are band-limited again before encoding.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from coachtrack import dsp, loudness, memory, mixer
from coachtrack.mixer import Audio, Mixer, Sound
from coachtrack.timeline import Event

GROUP = 4  # samples per group (0.18 ms): the limiter's and the solver's resolution
LIMITER_WINDOW_MS = 4
ENCODER_MARGIN_DB = 2.0  # true-peak ceiling below the target: LAME's noise adds 0.5 to 2 dB
# (measured on the shipped routines); an MP3 island that decodes over the ceiling anyway
# is encoded again, quieter (export: "The true-peak check"), and there the encoder's level
# loss comes off the margin (`master`)
REBAND_ROUNDS = 2  # limit, band-limit again, check: the encoder then has nothing to cut
STEPS = 8
TOLERANCE_LU = 0.05
MAX_STEP_DB = 6.0  # the gain moves at most this much a step, ...
SATURATED = 0.05  # ... no further up once a dB of gain adds less loudness than this, ...
MAX_GAIN_DB = 40.0  # ... and never past this: more would be raising a noise floor
# Near the most a voice can give under its ceiling, each LU costs the limiter many dB:
# reaching the gym's -14 LUFS limited 18 dB of espeak's voice's energy away, where
# 0.4 LU less took 11.5. The gain stops where a dB more adds less loudness than this.
KNEE_LU_PER_DB = 0.1
# Re-banding limited sounds (after the gain is solved) takes a little more off: about
# this fraction of what the limiter takes, measured on the shipped routines (0.1 LU
# for the phone profile's 5 LU, 0.25 LU for the gym's 10). The solve aims that much over.
REBAND_LOSS = 0.025
MAX_BED_RISE_DB = 2.0  # a music bed plays up to this much over its level where the voice
# cannot bring the track to its target (held by the limiter): more would bury the voice
OVERSAMPLE = 4  # true peak: the signal between samples, at quarter-sample steps
# De-essing. The limiter takes 5 to 10 dB off vowels' peaks, not off hissing consonants
# ("s", "sh"), which end up as loud as the vowels; and MP3 codes such noise coarsely: its
# decoded peaks rose 6 dB over the sound's (to 0.1 dB under the gym ceiling). So the
# limiter sees a sound's peaks this much higher where all of its energy is hiss, in
# proportion elsewhere, and brings hiss down to where vowels are.
DEESS_DB = 6.0
HISS_HZ = 4000  # "hiss": energy above this
HISS_WINDOW = 576  # samples the share of hiss is measured over: one MP3 granule
Key = tuple[str, str]
Curves = dict[Key, list[tuple[int, npt.NDArray[np.float32]]]]  # group where a curve starts


@dataclass(frozen=True, slots=True)
class Mastering:
    """How a track was brought to its profile's loudness."""

    gain: float  # applied to every spoken line after its own limiting (chimes: their own)
    ceiling: float  # linear true-peak ceiling each sound was limited to
    measured_lufs: float  # integrated loudness of the finished mix, as planned
    bed_db: float = 0.0  # where a music bed plays, not ducked: LU over the loudness target
    bed_at_most: bool = False  # it rose all it may (`MAX_BED_RISE_DB`)


@dataclass(slots=True)
class _Sound:
    """One distinct sound, band-limited and weighed, kept small: a long track has many."""

    band: npt.NDArray[np.int16]  # band-limited audio, scaled to its own peak
    scale: float  # band * scale is the audio
    squares: npt.NDArray[np.float16]  # K-weighted energy per group, with the filter's tail
    envelope: npt.NDArray[np.float16]  # each group's highest true peak, as the limiter sees it
    peak: float  # the highest of `envelope`
    starts: list[int] = field(default_factory=list)

    def audio(self) -> npt.NDArray[np.float32]:
        """The band-limited sound."""
        return np.asarray(self.band * np.float32(self.scale), dtype=np.float32)


def _key(event: Event) -> Key:
    return ("text", event.text) if event.text is not None else ("sound", event.sound or "")


def _groups(x: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """`x` cut into groups of GROUP samples (the last one padded with zeros)."""
    m = -(-len(x) // GROUP)
    if len(x) == m * GROUP:
        return x.reshape(m, GROUP)
    padded = np.zeros(m * GROUP, dtype=x.dtype)
    padded[: len(x)] = x
    return padded.reshape(m, GROUP)


def _group_peaks(x: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """The highest level in each group of `x`."""
    # Column by column: numpy reduces a short last axis slowly.
    groups = _groups(np.abs(x))
    return functools.reduce(np.maximum, (groups[:, i] for i in range(GROUP)))


def _group_sums(x: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """The sum of each group of `x`."""
    groups = _groups(x)
    return functools.reduce(np.add, (groups[:, i] for i in range(GROUP)))


# espeak-ng ends about half its lines dead, mid-wave (-9 dBFS to silence in 2 ms, once
# mastered): a click. Spoken lines are faded in and out over these few milliseconds.
SPEECH_FADE_IN_MS = 3
SPEECH_FADE_OUT_MS = 15


def _fade_edges(x: npt.NDArray[np.float32], rate: int) -> None:
    """Fade a spoken line in and out (raised cosine), in place."""
    for ms, end in ((SPEECH_FADE_IN_MS, False), (SPEECH_FADE_OUT_MS, True)):
        m = min(len(x) // 2, round(ms * rate / 1000))
        if m < 1:
            continue
        ramp = np.sin(0.5 * np.pi * (np.arange(m, dtype=np.float32) + 0.5) / m) ** 2
        if end:
            x[len(x) - m :] *= ramp[::-1]
        else:
            x[:m] *= ramp


def _prepare(audio: Sound, rate: int, *, spoken: bool = False) -> _Sound:
    """Band-limit a sound, weigh it and find its true peaks, with one forward FFT.

    A `spoken` line is faded in and out first (`_fade_edges`).
    """
    if rate != 22050:
        raise ValueError("the encoder band filter is designed for 22050 Hz")
    n, tail = len(audio), loudness.block_samples(rate)
    size = dsp.fast_size(n + dsp.IMPULSE_SAMPLES)
    # Single precision: ample for audio, and a third of the time of double.
    x = np.multiply(audio, 1 / 32768 if audio.dtype == np.int16 else 1, dtype=np.float32)
    if spoken:
        _fade_edges(x, rate)
    band = dsp.spectrum(x, size)
    band *= dsp.frequency_response(dsp.ENCODER_BAND_22050, size)
    k = loudness.KWeighting.for_rate(rate).sections()
    weighted = np.fft.irfft(band * dsp.frequency_response(k, size), size)[: n + tail]
    squares = _group_sums(np.square(weighted))
    del weighted
    clean = np.fft.irfft(band, size)[:n]
    hiss = np.fft.irfft(band * dsp.frequency_response(_HISS_FILTER, size), size)[:n]
    envelope = _group_peaks(clean) * _hiss_weight(clean, hiss)
    del hiss
    # Between the samples: the signal advanced by a quarter, a half, three quarters.
    ramp = dsp.fraction_ramp(size, OVERSAMPLE)
    for _ in range(OVERSAMPLE - 1):
        band *= ramp
        np.maximum(envelope, _group_peaks(np.fft.irfft(band, size)[:n]), out=envelope)
    del band
    peak = float(np.max(np.abs(clean), initial=0.0))
    scale = peak / 32767 if peak > 0 else 1.0
    return _Sound(
        band=np.round(clean / scale).astype(np.int16),
        scale=scale,
        squares=squares.astype(np.float16),
        envelope=envelope.astype(np.float16),
        peak=float(np.max(envelope, initial=0.0)),
    )


def _highpass(f0: float, rate: int = 22050) -> dsp.Biquad:
    w = 2 * math.pi * f0 / rate
    alpha, cos = math.sin(w) / math.sqrt(2), math.cos(w)
    return ((1 + cos) / 2, -(1 + cos), (1 + cos) / 2, 1 + alpha, -2 * cos, 1 - alpha)


_HISS_FILTER = (_highpass(HISS_HZ), _highpass(HISS_HZ))  # 24 dB an octave


def _hiss_weight(
    clean: npt.NDArray[np.floating], hiss: npt.NDArray[np.floating]
) -> npt.NDArray[np.float32]:
    """Per group: how much higher the limiter should see the sound, for its share of hiss."""
    window = HISS_WINDOW // GROUP
    total = dsp.moving_average(_group_sums(np.square(clean)).astype(np.float64), window)
    high = dsp.moving_average(_group_sums(np.square(hiss)).astype(np.float64), window)
    share = np.clip(high / np.maximum(total, 1e-12), 0.0, 1.0)
    return np.asarray(10 ** (DEESS_DB * share / 20), dtype=np.float32)


def _bin_groups(
    energy: npt.NDArray[np.float64], start: int, cum: npt.NDArray[np.float64], block: int
) -> None:
    """Add a sound placed at sample `start`, as running sums per group, into block energies."""
    groups = len(cum) - 1
    n = min(groups * GROUP, len(energy) * block - start)
    if n <= 0:
        return
    first, last = start // block, (start + n - 1) // block
    edges = (np.arange(first, last + 2) * block - start + GROUP // 2) // GROUP
    np.clip(edges, 0, -(-n // GROUP), out=edges)
    energy[first : last + 1] += cum[edges[1:]] - cum[edges[:-1]]


class _Solver:
    """The loudness of the mix at a given gain, once each sound is limited at that gain."""

    def __init__(self, mix: Mixer, ceiling: float, target: float, *, release: bool = False) -> None:
        timeline = mix.timeline
        self.rate = timeline.sample_rate
        self.total = timeline.duration
        self.block = loudness.block_samples(self.rate)
        self.ceiling = ceiling
        self.window = round(LIMITER_WINDOW_MS * self.rate / 1000)
        self.group_window = -(-self.window // GROUP)
        first = {_key(e): e for e in reversed(mix.sounding)}

        def prepare(event: Event) -> _Sound:
            sound = _prepare(mix.audio_of(event), self.rate, spoken=event.text is not None)
            if release:
                mix.release(event)
            return sound

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # FFTs free the GIL
            prepared = pool.map(prepare, first.values())
            self.sounds: dict[Key, _Sound] = dict(zip(first, prepared, strict=True))
        memory.hand_back()  # the raw sounds, if released, and the transforms' buffers
        for event in mix.sounding:
            self.sounds[_key(event)].starts.append(event.start)
        self.voices = [key for key in self.sounds if key[0] == "text"]
        self.chimes = [key for key in self.sounds if key[0] == "sound"]
        self.base = self._energy(self.voices)  # the voice's, before limiting and gain
        self.sounds_lufs: dict[float, float] = {}  # the voice's, by gain (dB): `loudness_at`
        # Chimes (bells, beeps, ticks) play at the profile's level for them, set against
        # the target: not wherever the voice's gain and the limiter happened to put them
        # (gym beeps were 8 LU over the voice, and a short phone track's bells over it).
        self.chime_gain = self._chime_gain(target + mix.profile.chime_lufs)
        self.chime_curves = self.limits(self.chime_gain, self.chimes)
        self.fixed = self._energy(self.chimes)
        self._take_off(self.fixed, self.chime_curves)
        self.fixed *= self.chime_gain**2  # what does not follow `gain`: chimes, and the bed
        self.bed = _music_energy(mix, self.base)
        # The bed plays `music_level_db` under the track's loudness target in the finished
        # track (where it is not ducked), whatever the file's own level. (Set against the
        # voice as it was before limiting, it ended 4 to 5 LU over the voice once the
        # limiter had taken its share, and pushed the voice down as much.)
        self.music_gain = 1.0  # the bed's, in the finished track: it takes no part in `gain`
        self.music_peak = 0.0  # its highest sample, before `music_gain`
        if self.bed is not None and mix.music is not None:
            music, self.music_peak = mix.music.measure()  # a stretch at a time
            if math.isfinite(music):
                self.music_gain = loudness.db_to_gain(target + mix.profile.music_level_db - music)
            self.bed *= self.music_gain**2
            self.fixed += self.bed
        # Sounds are limited one by one, as if alone. Under them the bed is ducked 6-10 dB,
        # and where the two add up over the ceiling, the mixer limits their sum. (Leaving
        # room under the ceiling for the bed's highest ducked peak took 2 to 4 dB off every
        # sound, for the rare moment a peak of each meets.)

    def _chime_gain(self, lufs: float) -> float:
        """The gain that brings the loudest 400 ms of any chime (K-weighted) to `lufs`."""
        n = round(0.4 * self.rate / GROUP)  # groups in a momentary-loudness window
        loudest = 0.0
        for key in self.chimes:
            cum = loudness.cumulative(self.sounds[key].squares.astype(np.float64))
            m = min(n, len(cum) - 1)
            if m > 0:
                loudest = max(loudest, float(np.max(cum[m:] - cum[:-m])))
        if loudest <= 0.0:
            return 1.0
        return loudness.db_to_gain(lufs - (-0.691 + 10 * math.log10(loudest / (n * GROUP))))

    def _energy(self, keys: list[Key]) -> npt.NDArray[np.float64]:
        """Block energies of these sounds where they are placed, before any limiting."""
        energy = np.zeros(self.total // self.block + 2)
        for key in keys:
            sound = self.sounds[key]
            cum = loudness.cumulative(sound.squares.astype(np.float32))
            for start in sound.starts:
                _bin_groups(energy, start, cum, self.block)
        return energy

    def _take_off(self, energy: npt.NDArray[np.float64], curves: Curves) -> None:
        """Take from block energies what the limiter curves take off their sounds."""
        for key, parts in curves.items():
            sound = self.sounds[key]
            removed = np.zeros(len(sound.squares))
            for a, curve in parts:
                squares = sound.squares[a : a + len(curve)].astype(np.float64)
                removed[a : a + len(curve)] = squares * (curve.astype(np.float64) ** 2 - 1.0)
            cum = loudness.cumulative(removed)
            for start in sound.starts:
                _bin_groups(energy, start, cum, self.block)

    def sound_ceiling(self, gain: float) -> float:
        """The ceiling each sound is limited to before `gain`."""
        return self.ceiling / gain

    def limits(self, gain: float, keys: list[Key] | None = None) -> Curves:
        """For each sound (the voice's, unless `keys` are given), the stretches its limiter
        works on at `gain` and the gain per group there."""
        ceiling = self.sound_ceiling(gain)
        window = self.group_window
        reach = loudness.limiter_reach(window)
        out: Curves = {}
        for key in self.voices if keys is None else keys:
            sound = self.sounds[key]
            if sound.peak <= ceiling:
                continue
            env = sound.envelope
            spans = dsp.segments(env > ceiling, reach)
            if not spans:
                continue
            # One limiter pass over the active stretches end to end: each is padded by
            # more than the limiter's reach, so no window sees into its neighbour.
            joined = np.concatenate([env[a:b] for a, b in spans]).astype(np.float64)
            gains = loudness.smooth_gain(joined, ceiling, window)
            cuts = np.cumsum([b - a for a, b in spans])[:-1]
            pieces = np.split(gains.astype(np.float32), cuts)
            out[key] = [(a, piece) for (a, _), piece in zip(spans, pieces, strict=True)]
        return out

    def loudness_at(self, gain_db: float) -> tuple[float, Curves]:
        """Integrated loudness after limiting and gain, and the limiter curves used."""
        gain = loudness.db_to_gain(gain_db)
        curves = self.limits(gain)
        energy = self._voice_energy(gain, curves)
        self.sounds_lufs[gain_db] = loudness.gated_loudness(energy, self.block, self.total)
        return loudness.gated_loudness(energy + self.fixed, self.block, self.total), curves

    def _voice_energy(self, gain: float, curves: Curves) -> npt.NDArray[np.float64]:
        """The voice's block energies once limited by `curves` and scaled by `gain`."""
        energy = self.base.copy()
        self._take_off(energy, curves)
        return energy * gain * gain

    def bed_rise(
        self, gain_db: float, curves: Curves, target: float, voice_loss: float
    ) -> tuple[float, float]:
        """How far (dB) the bed rises to bring the track to `target`, the voice at
        `gain_db` limited by `curves` and then re-banded (which takes `voice_loss` LU
        off it), and the track's loudness then.

        Where the limiter holds the voice under the target, the bed is what can still
        play louder (more so since it stays down through gaps under `mixer.DUCK_HOLD_MS`).
        It rises at most `MAX_BED_RISE_DB`, and only while its own peaks stay under the
        ceiling: over it, the mixer would limit what it gained.
        """
        bed = self.bed
        assert bed is not None
        voice = self._voice_energy(loudness.db_to_gain(gain_db), curves)
        others = voice * 10 ** (-voice_loss / 10) + self.fixed - bed

        def loudness_with(rise_db: float) -> float:
            louder = bed * loudness.db_to_gain(rise_db) ** 2
            return loudness.gated_loudness(others + louder, self.block, self.total)

        low, high = 0.0, MAX_BED_RISE_DB
        if self.music_peak > 0.0:
            high = min(high, 20 * math.log10(self.ceiling / (self.music_peak * self.music_gain)))
        at_low = loudness_with(low)
        if high <= 0.0 or at_low >= target - TOLERANCE_LU:
            return low, at_low
        if (at_high := loudness_with(high)) <= target:
            return high, at_high
        while high - low > 0.01:  # bisection: loudness grows with the bed
            middle = (low + high) / 2
            low, high = (middle, high) if loudness_with(middle) < target else (low, middle)
        return high, loudness_with(high)

    def sounds_at(self, gain_db: float) -> float:
        """The voice's loudness at this gain, without chimes or bed: what more gain does is
        judged on it (sounds at a set level would dilute it, and stop the gain early, or
        unlimited beeps keep it rising while the voice is crushed)."""
        if gain_db not in self.sounds_lufs:
            self.loudness_at(gain_db)
        return self.sounds_lufs[gain_db]

    def slope(self, low_db: float, high_db: float) -> float:
        """LU of the voice's loudness per dB of gain, between two gains."""
        return (self.sounds_at(high_db) - self.sounds_at(low_db)) / (high_db - low_db)


def _reband(audio: Audio, ceiling: float, window: int) -> Audio:
    """Band-limit a limited sound again, and limit what that brings back over the ceiling.

    Limiting moves the gain quickly, which spreads a little energy above the encoder's
    band; the encoder would cut it, and the peaks it shaped would grow back (by up to
    2 dB on heavily limited speech). Done here, the encoder finds nothing to cut.
    """
    n = len(audio)
    size = dsp.fast_size(n + dsp.IMPULSE_SAMPLES)
    response = dsp.frequency_response(dsp.ENCODER_BAND_22050, size)
    ramp = dsp.fraction_ramp(size, OVERSAMPLE)
    for _ in range(REBAND_ROUNDS):
        band = dsp.spectrum(audio, size)
        band *= response
        audio = np.asarray(np.fft.irfft(band, size)[:n], dtype=np.float32)
        level = np.abs(audio)
        for _ in range(OVERSAMPLE - 1):
            band *= ramp
            np.maximum(level, np.abs(np.fft.irfft(band, size)[:n]), out=level)
        gains = loudness.limiter_gain(level.astype(np.float64), ceiling, window)
        if gains is None:
            break
        audio *= gains.astype(np.float32)
    return audio


def _music_energy(mix: Mixer, like: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """The music bed's K-weighted energy per block (it plays under everything)."""
    if mix.music is None:
        return None
    timeline = mix.timeline
    meter = loudness.LoudnessMeter(timeline.sample_rate, timeline.duration)
    chunk = mixer.MEASURE_SECONDS * timeline.sample_rate // meter.block * meter.block
    for start in range(0, timeline.duration, chunk):
        end = min(timeline.duration, start + chunk)
        meter.add(start, mix.music.render(start, end, mix.duck_spans))
    return meter.energy[: len(like)].copy()


_Point = tuple[float, tuple[float, Curves]]  # gain (dB), and the loudness and curves there


def _secant(
    solver: _Solver, target: float, low: tuple[float, float], high: _Point
) -> tuple[tuple[float, float], _Point]:
    """Step the gain towards `target` loudness from two points already measured.

    Where the limiter holds every peak, more gain barely adds loudness: the target
    may be out of reach. The steps are bounded, the search stops once loudness no
    longer follows the gain, and the point closest to the target is kept.
    """
    lo_db, lo_l = low
    hi_db, (hi_l, curves) = high
    best = high
    for _ in range(STEPS):
        if abs(hi_l - target) < TOLERANCE_LU or hi_l == lo_l:
            break
        step = (target - hi_l) * (hi_db - lo_db) / (hi_l - lo_l)
        if not math.isfinite(step) or (step > 0 and solver.slope(lo_db, hi_db) < SATURATED):
            break
        next_db = min(MAX_GAIN_DB, hi_db + max(-MAX_STEP_DB, min(MAX_STEP_DB, step)))
        if next_db == hi_db:
            break
        next_l, next_curves = solver.loudness_at(next_db)
        if not math.isfinite(next_l):
            break
        lo_db, lo_l, hi_db, hi_l, curves = hi_db, hi_l, next_db, next_l, next_curves
        if abs(hi_l - target) < abs(best[1][0] - target):
            best = (hi_db, (hi_l, curves))
    return (lo_db, lo_l), best


def _at_knee(solver: _Solver, low: tuple[float, float], high: _Point) -> _Point:
    """`high`, or the highest gain under it whose last dB still added KNEE_LU_PER_DB.

    Loudness grows ever more slowly with gain as the limiter takes more (the curve
    bends over). The slope is measured where the gain was found and, while it is
    under the knee, 6 dB lower at a time; the knee is placed between the last two.
    """
    hi_db = high[0]
    lo_db = low[0]
    if not 0.2 <= hi_db - lo_db <= 2.0:  # a chord that long says little about the slope here
        lo_db = hi_db - 1.0
    upper, upper_at = solver.slope(lo_db, hi_db), (hi_db + lo_db) / 2
    if upper >= KNEE_LU_PER_DB or not math.isfinite(upper):
        return high
    down_db = hi_db
    while down_db > 0.0:
        down_db = max(0.0, down_db - 6.0)
        down = solver.loudness_at(down_db)
        lower = solver.slope(down_db - 1.0, down_db)
        if not math.isfinite(lower):
            break
        if lower >= KNEE_LU_PER_DB:
            # Slopes are those of the chords' midpoints; the knee lies between the two.
            at = down_db - 0.5
            at += (lower - KNEE_LU_PER_DB) / (lower - upper) * (upper_at - at)
            knee_db = min(hi_db, max(down_db, at + 0.5))
            return knee_db, solver.loudness_at(knee_db)
        upper, upper_at, high = lower, down_db - 0.5, (down_db, down)
    return high  # flat all the way down: the lowest gain measured limits least


def master(
    mix: Mixer,
    *,
    encoder_loss_db: float = 0.0,
    peaks_checked: bool = False,
    release: bool = False,
) -> tuple[Mixer, Mastering]:
    """The same mix with every sound limited and scaled to meet the profile's targets.

    `encoder_loss_db` is how much quieter the encoder makes the file: aimed for above
    the target. Where the file's decoded true peaks are checked (`peaks_checked`: the
    MP3 true-peak check encodes an island over the ceiling again), the ceiling rises
    with it: otherwise the limiter would hold the voice that much under the ceiling,
    and a track whose gain stops at the knee (gym) would land that much under its
    target. Elsewhere the ceiling stays put, and the loss is extra margin.
    With `release`, each of the mix's sounds is let go of once analysed (see
    `Mixer.release`): a long track then holds about one copy of its sounds at a time.
    """
    profile = mix.profile
    target = profile.loudness_lufs + encoder_loss_db
    margin_db = ENCODER_MARGIN_DB - (encoder_loss_db if peaks_checked else 0.0)
    ceiling = loudness.db_to_gain(profile.true_peak_dbtp - margin_db)
    solver = _Solver(mix, ceiling, target, release=release)
    raw, curves = solver.loudness_at(0.0)
    hi_db, hi_l, rise_db = 0.0, raw, 0.0
    # Nothing to measure (every block under the gate): the sounds stay as they are. (The
    # mix itself cannot be handed back: with `release` its sounds are gone.)
    if raw != -math.inf:
        # Limiting makes loudness grow more slowly than gain: find it by the secant method.
        first = min(MAX_GAIN_DB, target - raw)
        low, high = (0.0, raw), (first, solver.loudness_at(first))
        low, high = _secant(solver, target, low, high)
        # Then aim over the target by what re-banding will take, and solve on from there.
        taken = solver.sounds_at(0.0) + high[0] - solver.sounds_at(high[0])  # by the limiter
        aim = target + REBAND_LOSS * max(0.0, taken)
        low, high = _secant(solver, aim, low, high)
        hi_db, (hi_l, curves) = _at_knee(solver, low, high)
        if hi_l < aim - TOLERANCE_LU and solver.bed is not None:
            rise_db, hi_l = solver.bed_rise(hi_db, curves, target, aim - target)
            solver.music_gain *= loudness.db_to_gain(rise_db)
    gain = loudness.db_to_gain(hi_db)
    bed_db = profile.music_level_db + rise_db

    def finish(key: Key) -> npt.NDArray[np.int16]:
        sound = solver.sounds.pop(key)  # freed once finished
        audio = sound.audio()
        chime = key[0] == "sound"
        own_gain = solver.chime_gain if chime else gain
        parts = (solver.chime_curves if chime else curves).get(key, [])
        for a, curve in parts:  # the limiter's gain is constant within a group
            audio[a * GROUP : (a + len(curve)) * GROUP] *= np.repeat(curve, GROUP)[
                : len(audio) - a * GROUP
            ]
        if parts:
            audio = _reband(audio, solver.sound_ceiling(own_gain), solver.window)
        audio *= np.float32(own_gain)
        # 16 bits, as the track will be: half the memory of floats, for the same result.
        return np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)

    keys = list(solver.sounds)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # FFTs free the GIL
        finished = dict(zip(keys, pool.map(finish, keys), strict=True))
    dsp.forget_responses()
    memory.hand_back()  # the analysed sounds, the transforms' buffers
    mastered = Mixer(
        mix.timeline,
        {k[1]: v for k, v in finished.items() if k[0] == "text"},
        {k[1]: v for k, v in finished.items() if k[0] == "sound"},
        profile,
        mix.music.scaled(solver.music_gain) if mix.music else None,
    )
    return mastered, Mastering(gain, ceiling, hi_l, bed_db, rise_db >= MAX_BED_RISE_DB)
