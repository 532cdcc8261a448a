"""The mixer: sound lands where the timeline says, silence is exact zero."""

from __future__ import annotations

import numpy as np
import pytest

from coachtrack import mastering, mixer
from coachtrack.profiles import BEDSIDE, PHONE
from coachtrack.timeline import Chapter, Event, Timeline

RATE = 22050


def timeline(events: list[Event], duration: int) -> Timeline:
    return Timeline(
        "t", "T", "phone", "en", RATE, duration, tuple(events), (Chapter("c", 0, duration),)
    )


def test_render_places_clips_at_their_sample_and_nothing_else() -> None:
    clip = np.array([0.5, -0.5, 0.25], dtype=np.float32)
    tick = np.array([0.1, 0.1], dtype=np.float32)
    tl = timeline(
        [Event("speech", 10, 13, text="a"), Event("countdown", 20, 22, sound="tick"),
         Event("hold", 15, 30)], 40)  # fmt: skip
    out = mixer.Mixer(tl, {"a": clip}, {"tick": tick}, PHONE).render(0, 40)
    expected = np.zeros(40, dtype=np.float32)
    expected[10:13] = clip
    expected[20:22] = tick
    assert np.array_equal(out, expected)
    # a stretch that starts inside a clip gets just its tail
    assert np.array_equal(mixer.Mixer(tl, {"a": clip}, {"tick": tick}, PHONE).render(11, 14),
                          np.array([-0.5, 0.25, 0.0], dtype=np.float32))  # fmt: skip


def test_islands_cover_every_sound_on_the_grid_and_skip_long_silence() -> None:
    events = [Event("speech", RATE * 1, RATE * 2, text="a"), Event("hold", RATE * 3, RATE * 63),
              Event("chime", RATE * 3, RATE * 4, sound="hold-start"),
              Event("chime", RATE * 63, RATE * 64, sound="hold-end")]  # fmt: skip
    parts = mixer.islands(timeline(events, RATE * 66))
    assert all(p.start % (RATE // 10) == 0 for p in parts)
    for e in events:
        if e.kind != "hold":
            assert any(p.start <= e.start and e.end <= p.end for p in parts)
    assert sum(p.end - p.start for p in parts) < RATE * 8


def test_finished_pcm_is_exact_zero_outside_the_islands() -> None:
    clip = (np.sin(np.arange(RATE) / 5) * 0.5).astype(np.float32)
    events = [
        Event("speech", RATE * 2, RATE * 3, text="a"),
        Event("speech", RATE * 30, RATE * 31, text="a"),
    ]
    tl = timeline(events, RATE * 40)
    mix = mixer.Mixer(tl, {"a": clip}, {}, PHONE)
    parts = mixer.islands(tl)
    mastered, result = mastering.master(mix)
    pcm = np.concatenate(list(mixer.pcm_chunks(mastered, parts, result.ceiling)))
    assert len(pcm) == tl.duration
    inside = np.zeros(len(pcm), dtype=bool)
    for p in parts:
        inside[p.start : p.end] = True
    assert not pcm[~inside].any()
    assert np.abs(pcm[RATE * 2 : RATE * 3]).max() > 1000


def test_fade_in_starts_from_silence_and_rises_gently() -> None:
    clip = np.ones(RATE * 3, dtype=np.float32) * 0.5
    tl = timeline([Event("speech", 0, RATE * 3, text="a")], RATE * 3)
    out = mixer.Mixer(tl, {"a": clip}, {}, BEDSIDE).render(0, RATE * 3)
    assert out[0] == 0.0 and out[RATE] < out[RATE * 2 - 1] and out[RATE * 2] == 0.5
    # Past its first moments, the fade is never so deep that what plays in it is lost.
    edge = round(mixer.FADE_IN_EDGE_MS * RATE / 1000)
    assert np.all(np.diff(out[: RATE * 2]) >= 0)
    assert out[edge] == pytest.approx(0.5 * 10 ** (mixer.FADE_IN_FROM_DB / 20), rel=0.01)
    assert mixer.FADE_IN_FROM_DB >= -10
    # Rendered in pieces, the fade is the same.
    pieces = [
        mixer.Mixer(tl, {"a": clip}, {}, BEDSIDE).render(a, a + 1000)
        for a in range(0, RATE * 3, 1000)
    ]
    assert np.array_equal(np.concatenate(pieces)[: RATE * 3], out)


def test_music_is_ducked_under_speech() -> None:
    music = np.ones(RATE, dtype=np.float32)
    bed = mixer.MusicBed(music, rate=RATE, duration=RATE * 20, level_db=0, duck_db=10)
    out = bed.render(0, RATE * 20, ((RATE * 10, RATE * 11),))
    assert out[RATE * 5] == 1.0
    assert out[int(RATE * 10.5)] == np.float32(10 ** (-10 / 20))
    assert out[0] == 0.0  # faded in


def test_a_looped_bed_has_no_click_where_it_turns() -> None:
    # 1.003 s of a 220 Hz sine: played end to start as it is, the turn jumps by ~0.4.
    t = np.arange(round(RATE * 1.003)) / RATE
    music = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    bed = mixer.MusicBed(music, rate=RATE, duration=RATE * 10, level_db=0, duck_db=10)
    out = bed.render(RATE * 3, RATE * 7, ())  # past the fade-in, over several turns
    steady = np.max(np.abs(np.diff(music)))  # the sine's own steepest step
    assert np.max(np.abs(np.diff(out))) <= steady * 1.05
    assert abs(len(bed.played()) - (len(music) - round(mixer.LOOP_CROSSFADE_MS * RATE / 1000))) <= 1


def test_the_bed_dips_under_every_sound_and_stays_down_through_short_gaps() -> None:
    events = (
        Event("chime", RATE * 4, RATE * 4 + RATE // 2, sound="hold-start"),
        Event("countdown", RATE * 8, RATE * 8 + RATE // 2, text="Three"),
        Event("countdown", RATE * 9, RATE * 9 + RATE // 2, text="Two"),  # 0.5 s later
        Event("speech", RATE * 14, RATE * 15, text="a"),  # 5.5 s later
    )
    spans = mixer.duck_spans(events, RATE)
    assert spans == ((RATE * 4, RATE * 4 + RATE // 2), (RATE * 8, RATE * 9 + RATE // 2),
                     (RATE * 14, RATE * 15))  # fmt: skip
    bed = mixer.MusicBed(np.ones(RATE, np.float32), rate=RATE, duration=RATE * 20, level_db=0,
                         duck_db=10)  # fmt: skip
    out = bed.render(0, RATE * 20, spans)
    ducked = np.float32(10 ** (-10 / 20))
    assert out[RATE * 4 + 100] == ducked  # under a chime too (past the bed's fade-in)
    assert out[int(RATE * 8.75)] == ducked  # between two counts
    assert out[RATE * 12] == 1.0  # back up in a longer gap


def test_a_bed_renders_what_its_gain_says_wherever_it_is_cut() -> None:
    # Each dip is worked out only where it reaches; the bed must be what the gain says
    # sample by sample: faded in and out, looped, dipped with raised-cosine ramps, the
    # deeper dip counting where two ramps meet, in any stretch of it.
    rate, ramp, duck = RATE, 250, 10 ** (-9 / 20)
    music = np.random.default_rng(4).uniform(-0.5, 0.5, RATE * 3).astype(np.float32)
    duration = RATE * 40
    bed = mixer.MusicBed(music, rate=rate, duration=duration, level_db=-3, duck_db=9,
                         fade_ms=2000, ramp_ms=ramp)  # fmt: skip
    r = bed.ramp
    spans = ((RATE, RATE * 2), (RATE * 2 + r // 2, RATE * 5), (RATE * 20, RATE * 20),
             (duration - RATE, duration + RATE))  # fmt: skip
    at = np.arange(duration)
    dist = np.full(duration, np.inf)
    for s, e in spans:
        dist = np.minimum(dist, np.maximum(np.maximum(s - at, at - e), 0))
    depth = np.clip(1.0 - dist / r, 0.0, 1.0)
    dip = 1.0 - (0.5 - 0.5 * np.cos(np.pi * depth)) * (1.0 - duck)
    fade = np.clip(np.minimum(at / bed.fade, (duration - at) / bed.fade), 0.0, 1.0)
    played = bed.played()
    expected = played[at % len(played)].astype(np.float64) * bed.level * fade * dip
    for a, b in ((0, duration), (RATE * 2 - 7, RATE * 2 + r), (RATE * 19, RATE * 33),
                 (duration - 5, duration), (12345, 12346)):  # fmt: skip
        got = bed.render(a, b, spans)
        assert np.allclose(got, expected[a:b], rtol=1e-6, atol=1e-7), (a, b)


def test_mastering_meets_loudness_and_true_peak_targets() -> None:
    # Speech-like bursts with high peaks: the limiter has to work for the gym target.
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(RATE * 2)
    voiced = np.zeros_like(noise)  # mostly low frequencies, as speech is
    for i in range(1, len(noise)):
        voiced[i] = 0.9 * voiced[i - 1] + noise[i]
    clip = voiced * 0.05
    pulse = 0.9 * np.exp(-((np.arange(-12, 13) / 4) ** 2))  # a glottal-like peak, not a click
    for at in range(12, len(clip) - 12, 500):
        clip[at - 12 : at + 13] += pulse
    clip = clip.astype(np.float32)
    events = [Event("speech", RATE * (1 + 3 * i), RATE * (3 + 3 * i), text="a") for i in range(8)]
    tl = timeline(events, RATE * 26)
    from coachtrack import loudness
    from coachtrack.profiles import GYM

    mastered, result = mastering.master(mixer.Mixer(tl, {"a": clip}, {}, GYM))
    pcm = np.concatenate(list(mixer.pcm_chunks(mastered, mixer.islands(tl), result.ceiling)))
    audio = pcm.astype(np.float32) / 32767
    assert loudness.integrated_loudness([(0, audio)], RATE, len(audio)) == pytest.approx(
        -14, abs=0.2
    )
    assert 20 * np.log10(loudness.true_peak(audio)) <= GYM.true_peak_dbtp - 0.5


def test_a_music_bed_sits_under_the_target_and_does_not_push_the_voice_down() -> None:
    from coachtrack import loudness
    from coachtrack.profiles import GYM

    rng = np.random.default_rng(3)
    clip = np.zeros(RATE * 2)
    for at in range(0, len(clip) - 400, 300):  # peaky "speech": a burst every 14 ms
        clip[at : at + 60] = rng.standard_normal(60) * 0.3
    clip = clip.astype(np.float32)
    music = rng.standard_normal(RATE * 3).astype(np.float32) * 0.05
    music[:: RATE // 4] = 0.9  # a drum-like peak four times a second: a high crest factor
    events = [Event("speech", RATE * s, RATE * (s + 2), text="a") for s in (1, 10, 19, 28)]
    tl = timeline(events, RATE * 32)

    def voice_and_bed(bed: mixer.MusicBed | None) -> tuple[float, float]:
        mix = mixer.Mixer(tl, {"a": clip}, {}, GYM, bed)
        mastered, result = mastering.master(mix)
        pcm = np.concatenate(
            list(
                mixer.pcm_chunks(mastered, mixer.islands(tl, music=bed is not None), result.ceiling)
            )
        )
        audio = pcm.astype(np.float32) / 32768
        assert 20 * np.log10(loudness.true_peak(audio)) <= GYM.true_peak_dbtp - 0.5
        voice = mastered.clips["a"].astype(np.float32) / 32768
        between = audio[RATE * 5 : RATE * 8]  # the bed alone, clear of the dips
        return (loudness.integrated_loudness([(0, voice)], RATE, len(voice)),
                loudness.integrated_loudness([(0, between)], RATE, len(between)))  # fmt: skip

    alone, _ = voice_and_bed(None)
    bed = mixer.MusicBed(music, rate=RATE, duration=tl.duration, level_db=0.0, duck_db=10)
    voice, between = voice_and_bed(bed)
    # The bed where nobody speaks: `music_level_db` under the target, whatever the file's level.
    assert between == pytest.approx(GYM.loudness_lufs + GYM.music_level_db, abs=0.5)
    # The voice keeps its level: no room kept under the ceiling for the bed's peaks (that
    # took 2-4 dB off every sound), and the bed no longer set against the unlimited voice.
    assert voice >= alone - 1.0, (voice, alone)


def _held_voice_over(music: np.ndarray) -> tuple[mastering.Mastering, float, float]:
    """A gym track whose voice the limiter holds under the target (sparse clicks), over
    `music`: how it was mastered, its loudness, and the bed's where nobody speaks."""
    from coachtrack import loudness
    from coachtrack.profiles import GYM

    rng = np.random.default_rng(3)
    clip = np.zeros(RATE * 2)
    for at in range(0, len(clip) - 400, 2000):
        clip[at : at + 30] = rng.standard_normal(30) * 0.5
    events = [Event("speech", RATE * s, RATE * (s + 2), text="a") for s in range(1, 40, 8)]
    tl = timeline(events, RATE * 42)
    bed = mixer.MusicBed(music.astype(np.float32), rate=RATE, duration=tl.duration, level_db=0.0,
                         duck_db=GYM.music_duck_db)  # fmt: skip
    mix = mixer.Mixer(tl, {"a": clip.astype(np.float32)}, {}, GYM, bed)
    mastered, result = mastering.master(mix)
    parts = mixer.islands(tl, music=True)
    audio = np.concatenate(list(mixer.pcm_chunks(mastered, parts, result.ceiling))) / 32768
    assert 20 * np.log10(loudness.true_peak(audio.astype(np.float32))) <= GYM.true_peak_dbtp
    between = audio[RATE * 4 : RATE * 8]  # clear of the dips
    return (result, loudness.integrated_loudness([(0, audio)], RATE, len(audio)),
            loudness.integrated_loudness([(0, between)], RATE, len(between)))  # fmt: skip


def test_a_bed_rises_where_the_limiter_holds_the_voice_under_the_target() -> None:
    from coachtrack.profiles import GYM

    t = np.arange(RATE * 3) / RATE
    result, lufs, bed = _held_voice_over(0.1 * np.sin(2 * np.pi * 220 * t))
    # The track reaches its target: the bed makes up what the voice cannot (it stayed at
    # its level, and the track 1.8 LU under).
    assert lufs == pytest.approx(GYM.loudness_lufs, abs=0.1)
    rise = result.bed_db - GYM.music_level_db
    assert 0.5 < rise <= mastering.MAX_BED_RISE_DB
    assert bed == pytest.approx(GYM.loudness_lufs + result.bed_db, abs=0.3)


def test_a_bed_rises_no_further_than_its_own_peaks_allow() -> None:
    from coachtrack.profiles import GYM

    t = np.arange(RATE * 3) / RATE
    music = 0.01 * np.sin(2 * np.pi * 110 * t)
    music[:: RATE // 4] = 0.9  # clicks far over the song: already at the ceiling
    result, _, _ = _held_voice_over(music)
    assert result.bed_db == GYM.music_level_db


@pytest.mark.parametrize("name", ["phone", "bedside", "gym"])
def test_chimes_play_at_their_profile_level_whatever_the_voice(name: str) -> None:
    from coachtrack import loudness
    from coachtrack.profiles import PROFILES
    from coachtrack.sounds import sound_set

    profile = PROFILES[name]
    sounds = sound_set(profile.chimes, RATE)
    rng = np.random.default_rng(11)

    def loudest_400ms(audio: np.ndarray) -> float:
        w = loudness.KWeighting.for_rate(RATE).apply(np.concatenate([audio, np.zeros(RATE)]))
        n = int(0.4 * RATE)
        c = np.concatenate([[0.0], np.cumsum(w.astype(np.float64) ** 2)])
        return -0.691 + 10 * np.log10(np.max(c[n:] - c[:-n]) / n)

    levels = []
    for voice_level in (0.05, 0.4):  # a quiet voice and a loud one
        clip = (rng.standard_normal(RATE * 2) * voice_level).astype(np.float32)
        events = [Event("chime", 0, len(sounds["hold-start"]), sound="hold-start")]
        events += [Event("speech", RATE * 3 + RATE * 4 * i, RATE * 5 + RATE * 4 * i, text="a")
                   for i in range(5)]  # fmt: skip
        tl = timeline(events, RATE * 24)
        mastered, _ = mastering.master(mixer.Mixer(tl, {"a": clip}, sounds, profile))
        loudest = max(loudest_400ms(v.astype(np.float64) / 32768) for v in mastered.sounds.values())
        levels.append(loudest)
    for level in levels:
        assert level == pytest.approx(profile.loudness_lufs + profile.chime_lufs, abs=0.5)


def test_sounds_that_do_not_overlap_are_copied_as_they_are() -> None:
    clip = (np.arange(-500, 500) * 20).astype(np.int16)
    tick = np.full(300, 1000, dtype=np.int16)
    events = [Event("speech", 100, 1100, text="a"), Event("countdown", 1200, 1500, sound="t"),
              Event("countdown", 1500, 1800, sound="t")]  # fmt: skip
    mix = mixer.Mixer(timeline(events, 3000), {"a": clip}, {"t": tick}, PHONE)
    pcm = mix.render_pcm(0, 3000)
    assert pcm is not None
    expected = np.zeros(3000, dtype=np.int16)
    expected[100:1100], expected[1200:1500], expected[1500:1800] = clip, tick, tick
    assert np.array_equal(pcm, expected)
    # the mixing path gives the very same samples
    assert np.array_equal(mixer.to_int16(mix.render(0, 3000)), expected)
    assert np.array_equal(mix.render_pcm(150, 1300), expected[150:1300])


def test_overlapping_sounds_music_and_fades_take_the_mixing_path() -> None:
    clip = np.full(1000, 1000, dtype=np.int16)
    overlapping = [Event("speech", 100, 1100, text="a"), Event("chime", 900, 1900, text="a")]
    assert mixer.Mixer(timeline(overlapping, 3000), {"a": clip}, {}, PHONE).render_pcm(0, 3000) \
        is None  # fmt: skip
    alone = [Event("speech", 100, 1100, text="a")]
    assert mixer.Mixer(timeline(alone, 3000), {"a": clip}, {}, BEDSIDE).render_pcm(0, 3000) \
        is None  # bedside fades in over its first 2 s  # fmt: skip
    bed = mixer.MusicBed(np.ones(100, np.float32), rate=RATE, duration=3000, level_db=-20,
                         duck_db=6)  # fmt: skip
    with_music = mixer.Mixer(timeline(alone, 3000), {"a": clip}, {}, PHONE, bed)
    assert with_music.render_pcm(0, 3000) is None


def test_events_in_finds_every_sound_heard_in_a_stretch() -> None:
    clip = np.ones(50, dtype=np.int16)
    long_clip = np.ones(5000, dtype=np.int16)
    events = [Event("speech", 0, 5000, text="long"), Event("speech", 100, 150, text="a"),
              Event("speech", 6000, 6050, text="a")]  # fmt: skip
    mix = mixer.Mixer(timeline(events, 7000), {"a": clip, "long": long_clip}, {}, PHONE)
    assert [e.start for e in mix.events_in(4000, 4100)] == [0]  # began long before
    assert [e.start for e in mix.events_in(120, 6001)] == [0, 100, 6000]
    assert mix.events_in(5000, 6000) == []
