"""Events + clips -> PCM, in numpy at the track's native rate.

A track is mostly silence. It is rendered as "islands": stretches around the
sounding events, aligned to the 100 ms loudness grid, each rendered on demand,
so no stage ever holds the whole track.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from coachtrack import loudness
from coachtrack.errors import BuildError
from coachtrack.profiles import Profile
from coachtrack.timeline import Event, Timeline

Audio = npt.NDArray[np.float32]
Sound = npt.NDArray[np.float32] | npt.NDArray[np.int16]  # int16: full scale is 32768
SOUNDING = ("speech", "cue", "chime", "countdown")
ISLAND_MARGIN_MS = 250  # silence kept around sound, for filter and limiter tails
MAX_ISLAND_S = 60  # longer stretches of sound are cut, so memory stays flat
LIMITER_WINDOW_MS = 4  # the safety limiter over overlapping sounds


@dataclass(frozen=True, slots=True)
class Island:
    """A stretch of the track `[start, end)` in samples that holds sound."""

    start: int
    end: int


def islands(timeline: Timeline, *, music: bool = False) -> tuple[Island, ...]:
    """The stretches that hold sound, on the 100 ms grid; everything else is silence.

    Under a music bed the whole track sounds: it is one island (cut into pieces).
    """
    grid = loudness.block_samples(timeline.sample_rate)
    margin = round(ISLAND_MARGIN_MS * timeline.sample_rate / 1000)
    longest = MAX_ISLAND_S * timeline.sample_rate // grid * grid
    if music or any(e.kind == "music" for e in timeline.events):
        spans = [(0, timeline.duration)]
    else:
        spans = sorted((e.start, e.end) for e in timeline.events if e.kind in SOUNDING)
    merged: list[list[int]] = []
    for start, end in spans:
        lo = max(0, (start - margin) // grid * grid)
        hi = min(timeline.duration, end + margin)
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out: list[Island] = []
    for lo, hi in merged:
        for cut in range(lo, hi, longest):
            out.append(Island(cut, min(hi, cut + longest)))
    return tuple(out)


DUCK_HOLD_MS = 2000  # a music bed stays down through shorter gaps between sounds


def duck_spans(events: tuple[Event, ...], rate: int) -> tuple[tuple[int, int], ...]:
    """Where a music bed dips: under every sound (voice, chime, count), held through short
    gaps, so it does not swell between the words of a countdown."""
    hold = round(DUCK_HOLD_MS * rate / 1000)
    spans: list[list[int]] = []
    for event in sorted(events, key=lambda e: e.start):
        if spans and event.start - spans[-1][1] < hold:
            spans[-1][1] = max(spans[-1][1], event.end)
        else:
            spans.append([event.start, event.end])
    return tuple((a, b) for a, b in spans)


class Mixer:
    """Renders any stretch of a timeline from its clips and sounds."""

    def __init__(
        self,
        timeline: Timeline,
        clips: Mapping[str, Sound],
        sounds: Mapping[str, Sound],
        profile: Profile,
        music: MusicBed | None = None,
    ) -> None:
        self.timeline = timeline
        self.clips = clips
        self.sounds = sounds
        self.profile = profile
        self.music = music
        self.sounding = tuple(e for e in timeline.events if e.kind in SOUNDING)
        self.duck_spans = duck_spans(self.sounding, timeline.sample_rate)
        # The sounding events by start, and the latest end of any event up to each one:
        # the events that reach into a stretch are found by bisection.
        self._by_start = sorted(self.sounding, key=lambda e: e.start)
        self._starts = [e.start for e in self._by_start]
        self._reach: list[int] = []
        latest = 0
        for event in self._by_start:
            latest = max(latest, self._sounds_until(event))
            self._reach.append(latest)

    def _sounds_until(self, event: Event) -> int:
        """Where an event's sound ends: where its samples do."""
        return event.start + len(self.audio_of(event))

    def events_in(self, start: int, end: int) -> list[Event]:
        """The sounding events heard in `[start, end)`, by start."""
        first = bisect.bisect_right(self._reach, start)
        last = bisect.bisect_left(self._starts, end)
        return [e for e in self._by_start[first:last] if self._sounds_until(e) > start]

    def render_pcm(self, start: int, end: int) -> npt.NDArray[np.int16] | None:
        """`[start, end)` as 16-bit PCM, when that is a plain copy of the sounds' samples.

        That is so where no two sounds overlap, no music plays and no fade is under way,
        and the sounds are 16-bit: then nothing needs mixing or limiting. Else None.
        """
        fade = round(self.profile.fade_in_ms * self.timeline.sample_rate / 1000)
        if self.music is not None or start < fade:
            return None
        out = np.zeros(end - start, dtype=np.int16)
        heard = 0  # where the sound of the events so far ends
        for event in self.events_in(start, end):
            audio = self.audio_of(event)
            if audio.dtype != np.int16 or event.start < heard:
                return None
            heard = self._sounds_until(event)
            lo, hi = max(start, event.start), min(end, heard)
            out[lo - start : hi - start] = audio[lo - event.start : hi - event.start]
        return out

    def audio_of(self, event: Event) -> Sound:
        """The samples an event plays."""
        if event.text is not None:
            return self.clips[event.text]
        assert event.sound is not None
        return self.sounds[event.sound]

    def release(self, event: Event) -> None:
        """Let go of the samples an event plays: this mix can no longer render them.

        The mappings the mix was made with lose them too, so they are freed once
        nothing else holds them.
        """
        held: Mapping[str, Sound] = self.clips if event.text is not None else self.sounds
        if isinstance(held, MutableMapping):
            held.pop(event.text if event.text is not None else event.sound or "", None)

    def render(self, start: int, end: int) -> Audio:
        """The raw mix of `[start, end)`, before loudness and limiting."""
        out = np.zeros(end - start, dtype=np.float32)
        for event in self.events_in(start, end):
            audio = self.audio_of(event)
            lo, hi = max(start, event.start), min(end, self._sounds_until(event))
            piece = audio[lo - event.start : hi - event.start]
            if piece.dtype == np.int16:
                out[lo - start : hi - start] += piece * np.float32(1 / 32768)
            else:
                out[lo - start : hi - start] += piece
        if self.music is not None:
            out += self.music.render(start, end, self.duck_spans)
        self._fade_in(out, start)
        return out

    def _fade_in(self, out: Audio, start: int) -> None:
        fade = round(self.profile.fade_in_ms * self.timeline.sample_rate / 1000)
        if start >= fade or not fade:
            return
        n = min(len(out), fade - start)
        out[:n] *= fade_in_gain(np.arange(start, start + n), fade, self.timeline.sample_rate)


# The fade-in rises from silence to this in its first moments, then on to full level: a
# gentle start, in which the start chime and the first instruction (both inside the
# fade) are still clearly heard. Faded from silence, the chime was 19 dB under the others.
FADE_IN_FROM_DB = -8.0
FADE_IN_EDGE_MS = 30


def fade_in_gain(at: npt.NDArray[np.integer], fade: int, rate: int) -> npt.NDArray[np.float32]:
    """The fade-in's gain at samples `at` of a fade `fade` samples long."""
    floor = 10 ** (FADE_IN_FROM_DB / 20)
    rise = floor + (1 - floor) * np.sin(0.5 * np.pi * np.minimum(at / fade, 1.0)) ** 2
    edge = max(1, round(FADE_IN_EDGE_MS * rate / 1000))
    onset = np.sin(0.5 * np.pi * np.minimum(at / edge, 1.0)) ** 2
    return np.asarray(rise * onset, dtype=np.float32)


# Music measured at a time for its loudness, as the track's bed is: a stretch's transforms
# hold several times its samples (a 4-minute song measured in one piece took a gym
# track's build to 470 MB; 10 minutes were allowed).
MEASURE_SECONDS = 60


class MusicSource(Protocol):
    """Music samples read a stretch at a time (`music.DecodedMusic` keeps them on disk)."""

    def __len__(self) -> int: ...

    def read(self, start: int, stop: int) -> Audio:
        """Samples `[start, stop)`, cut to the music's length."""
        ...


class InMemory:
    """Music samples held in memory, as a `MusicSource`."""

    def __init__(self, audio: Audio) -> None:
        self.audio = audio

    def __len__(self) -> int:
        return len(self.audio)

    def read(self, start: int, stop: int) -> Audio:
        return self.audio[max(0, start) : stop]


class MusicBed:
    """A music bed: looped to fill the track (if shorter), faded at both ends, ducked under
    every sound. `source` names the music in messages (its file).

    The music is read a stretch at a time, as it is played: a bed holds only the loop's
    crossfaded start, never the whole of the music.
    """

    def __init__(self, audio: Audio | MusicSource, *, rate: int, duration: int,
                 level_db: float, duck_db: float, fade_ms: int = 3000, ramp_ms: int = 250,
                 source: str = "--music") -> None:  # fmt: skip
        self.music: MusicSource = InMemory(audio) if isinstance(audio, np.ndarray) else audio
        # Music as long as the track never turns: only what the track plays of it is used
        # (its loudness is measured on that: an hour-long mix under a half-minute track was
        # measured whole, in 5 GB), and its end is not faded into its start. Shorter music
        # turns with its last moments faded into its first (`seamless_loop`).
        if len(self.music) >= duration:
            self.head, self.length = np.zeros(0, np.float32), duration
        else:
            self.head = _loop_head(self.music, rate)
            self.length = len(self.music) - len(self.head)
        self.source = source
        self.rate = rate
        self.duration = duration
        self.level = loudness.db_to_gain(level_db)
        self.duck = loudness.db_to_gain(-duck_db)
        self.fade = round(fade_ms * rate / 1000)
        self.ramp = round(ramp_ms * rate / 1000)

    def played(self) -> Audio:
        """The music as the bed plays it once through, in memory: for short music."""
        return self._read(0, self.length)

    def _read(self, start: int, stop: int) -> Audio:
        """Samples `[start, stop)` of the music played once through (`0 <= start <= stop <=
        length`): the loop's crossfaded start, then the music itself."""
        n = len(self.head)
        if stop <= n:
            return self.head[start:stop]
        if start >= n:
            return self.music.read(start, stop)
        return np.concatenate([self.head[start:], self.music.read(n, stop)])

    def scaled(self, gain: float) -> MusicBed:
        """The same bed, `gain` times louder."""
        bed = copy.copy(self)
        bed.level = self.level * gain
        return bed

    def lufs(self) -> float:
        """The integrated loudness (LUFS) of the bed's music played once through, at its own
        level: unfaded, not ducked."""
        return self.measure()[0]

    def measure(self) -> tuple[float, float]:
        """The integrated loudness (LUFS) and the highest sample of the bed's music played
        once through, at its own level: unfaded, not ducked.

        Measured `MEASURE_SECONDS` at a time (`LoudnessMeter.feed`: the same result, to
        rounding, as in one piece, which took 5 GB for an hour). A BuildError if even
        that does not fit.
        """
        meter = loudness.LoudnessMeter(self.rate, self.length)
        stretch = MEASURE_SECONDS * self.rate
        peak = 0.0
        try:
            for start in range(0, self.length, stretch):
                piece = self._read(start, min(self.length, start + stretch))
                peak = max(peak, float(np.max(np.abs(piece), initial=0.0)))
                meter.feed(piece)
            meter.end()
            return meter.integrated(), peak * self.level
        except MemoryError:
            raise BuildError(
                f"{self.source}: not enough memory to measure the music's loudness"
            ) from None

    def render(self, start: int, end: int, spans: tuple[tuple[int, int], ...]) -> Audio:
        """The bed's samples for `[start, end)`, ducked under the given spans of sound."""
        out = self._looped(start, end).astype(np.float64)
        out *= self.level
        out *= self._gain(start, end, spans)
        return out.astype(np.float32)

    def _looped(self, start: int, end: int) -> Audio:
        """The music's samples for `[start, end)`, from its start again where it runs out."""
        pieces, at = [], start
        while at < end:
            offset = at % self.length
            piece = self._read(offset, min(self.length, offset + end - at))
            pieces.append(piece)
            at += len(piece)
        return np.concatenate(pieces) if len(pieces) != 1 else pieces[0]

    def _gain(
        self, start: int, end: int, spans: tuple[tuple[int, int], ...]
    ) -> npt.NDArray[np.float64]:
        """The ducking's and the fades' gain over `[start, end)`.

        Each dip is worked out only where it is not 1, its ramps apart from its span
        (worked out over the whole stretch for each span that reached into it, the dips
        took 2.4 s of a 27-minute gym track's build; 0.09 s so).
        """
        gain = np.ones(end - start)
        ramp, floor = self.ramp, self.duck
        # How deep in a dip each sample is: 1 inside a span, falling to 0 a ramp away;
        # where dips meet, the deeper one counts.
        first = bisect.bisect_left([e for _, e in spans], start - ramp)  # ends are sorted
        for s, e in spans[first:]:
            if s - ramp >= end:
                break
            for lo, hi, edge in ((s - ramp, s, s), (e + 1, e + ramp + 1, e)):
                lo, hi = max(lo, start), min(hi, end)
                if lo < hi:
                    depth = 1.0 - np.abs(np.arange(lo, hi) - edge) / ramp
                    dipped = 1.0 - (0.5 - 0.5 * np.cos(np.pi * depth)) * (1.0 - floor)
                    part = gain[lo - start : hi - start]
                    np.minimum(part, dipped, out=part)  # raised cosine attack and release
            gain[max(s, start) - start : max(0, min(e + 1, end) - start)] = floor
        # Faded in over the first `fade` samples and out over the last.
        fade, total = self.fade, self.duration
        ends = [(0, fade), (total - fade, total)] if total > 2 * fade else [(0, total)]
        for lo, hi in ends if fade else []:
            lo, hi = max(lo, start), min(hi, end)
            if lo < hi:
                at = np.arange(lo, hi)
                faded = np.clip(np.minimum(at / fade, (total - at) / fade), 0.0, 1.0)
                gain[lo - start : hi - start] *= faded
        return gain


LOOP_CROSSFADE_MS = 60


def seamless_loop(audio: Audio, rate: int) -> Audio:
    """`audio` made to loop without a click: its last moments fade into its first.

    Played end to start as it was, the jump between its last and first samples clicked
    at every turn. The result is shorter by the crossfade; played once from its start
    (under the bed's fade-in) it begins with that crossfade.
    """
    head = _loop_head(InMemory(audio), rate)
    if not len(head):
        return audio
    return np.concatenate([head, audio[len(head) : len(audio) - len(head)]])


def _loop_head(music: MusicSource, rate: int) -> Audio:
    """The start of `music` looped: its last `LOOP_CROSSFADE_MS` fading into its first (none
    for music too short to loop that way)."""
    length = len(music)
    n = min(round(LOOP_CROSSFADE_MS * rate / 1000), length // 4)
    if n < 2:
        return np.zeros(0, np.float32)
    t = (np.arange(n) + 0.5) / n
    fade_in, fade_out = np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)  # equal power
    return np.asarray(music.read(0, n) * fade_in + music.read(length - n, length) * fade_out,
                      dtype=np.float32)  # fmt: skip


def pcm_chunks(
    mix: Mixer, parts: tuple[Island, ...], ceiling: float
) -> Iterator[npt.NDArray[np.int16]]:
    """The finished track as consecutive int16 chunks: silence between islands is exact zero."""
    window = round(LIMITER_WINDOW_MS * mix.timeline.sample_rate / 1000)
    silence = np.zeros(mix.timeline.sample_rate * 10, dtype=np.int16)
    cursor = 0
    for part in (*parts, Island(mix.timeline.duration, mix.timeline.duration)):
        while cursor < part.start:
            n = min(len(silence), part.start - cursor)
            yield silence[:n]
            cursor += n
        if part.end > part.start:
            pcm = mix.render_pcm(part.start, part.end)
            if pcm is not None:  # the sounds, each limited already, one after another
                yield pcm
                cursor = part.end
                continue
            # Sounds were limited one by one; where two overlap, this catches the sum
            # (on true peaks when a music bed runs under everything).
            audio = mix.render(part.start, part.end)
            # Interpolated only where it could matter (`loudness.INTERPOLATE_WITHIN_DB`).
            floor = ceiling * loudness.db_to_gain(-loudness.INTERPOLATE_WITHIN_DB)
            level = loudness.true_peak_levels(audio, floor=floor) if mix.music is not None else None
            yield to_int16(loudness.limit(audio, ceiling, window, level))
            cursor = part.end


def to_int16(audio: Audio) -> npt.NDArray[np.int16]:
    """Float samples in [-1, 1) to 16-bit PCM, rounded (exact zeros stay zero).

    Full scale is 32768, as for the 16-bit sounds, so a sound mixed alone comes out as
    its own samples.
    """
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
