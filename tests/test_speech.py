"""Speech: the pyttsx3/espeak-ng engine, the clip cache, and the helpers around them."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from coachtrack import SAMPLE_RATE, tools
from coachtrack.errors import BuildError, UserError
from coachtrack.speech import (
    SILENCE_THRESHOLD,
    Pyttsx3Engine,
    SpeechCache,
    SpeechEngine,
    SpeechRequest,
    VoiceInfo,
    clip_to_pcm16,
    default_cache_folder,
    languages_of,
    pcm16_to_clip,
    plain_text,
    resolve_voice,
    trim_silence,
)

from .fakes import FakeEngine

Clip = npt.NDArray[np.float32]

LINE = "Sit on the floor with your legs straight in front of you."
OTHERS = (
    "Release.",
    "Breathe out, and go a little deeper.",
    "Place the strap around the ball of your right foot.",
)


def en(text: str, rate_wpm: int = 170) -> SpeechRequest:
    return SpeechRequest(text, "gmw/en", rate_wpm)


class CountingEngine:
    """Wraps an engine and records what it is asked to synthesize."""

    def __init__(self, inner: SpeechEngine) -> None:
        self.inner = inner
        self.name = inner.name
        self.asked: list[SpeechRequest] = []

    def voices(self) -> list[VoiceInfo]:
        return self.inner.voices()

    def voice_for(self, language: str) -> str:
        return self.inner.voice_for(language)

    def close(self) -> None:
        self.inner.close()

    def stream(
        self, requests: Sequence[SpeechRequest], jobs: int = 2
    ) -> Generator[tuple[SpeechRequest, Clip], None, None]:
        self.asked.extend(requests)
        return self.inner.stream(requests, jobs=jobs)


@pytest.fixture(scope="module")
def engine() -> Iterator[Pyttsx3Engine]:
    with Pyttsx3Engine() as real:
        yield real


# --- pure helpers


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Hold it.", "Hold it."),
        ('Hold it. <break time="3s"/> Now release.', "Hold it. Now release."),
        ("<emphasis>Slowly</emphasis> now.", "Slowly now."),
        ("Less than < 5 seconds, more than > 2.", "Less than < 5 seconds, more than > 2."),
        ("  spaced \n out\t", "spaced out"),
        ("<!-- a comment -->", ""),
        ('<voice name="x">Up.</voice>', "Up."),
        # Words in angle brackets are prose: they were dropped unheard.
        ("Keep the angle <about 90 degrees, or more> at the knee.",
         "Keep the angle <about 90 degrees, or more> at the knee."),
    ],
)  # fmt: skip
def test_plain_text_drops_markup_only(text: str, spoken: str) -> None:
    assert plain_text(text) == spoken


def test_trim_silence_keeps_first_to_last_loud_sample() -> None:
    pcm = np.array([0, 0, 10, 500, 0, -700, 20, 0], dtype=np.int16)
    assert trim_silence(pcm).tolist() == [500, 0, -700]
    assert trim_silence(np.zeros(5, dtype=np.int16)).size == 0


def test_pcm16_round_trip_is_exact() -> None:
    pcm = np.array([-32768, -1, 0, 1, 12345, 32767], dtype=np.int16)
    clip = pcm16_to_clip(pcm)
    assert clip.dtype == np.float32
    assert clip.tolist() == [v / 32768 for v in pcm.tolist()]
    assert clip_to_pcm16(clip).tolist() == pcm.tolist()


def test_default_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("COACHTRACK_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_folder() == tmp_path / "xdg" / "coachtrack" / "speech"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_folder() == tmp_path / "home" / ".cache" / "coachtrack" / "speech"
    monkeypatch.setenv("COACHTRACK_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_folder() == tmp_path / "mine" / "speech"


# --- cache, with the fake engine


def test_cache_makes_each_missing_clip_once(tmp_path: Path) -> None:
    fake = FakeEngine()
    cache = SpeechCache(fake, tmp_path)
    requests = [en("One."), en("Two."), en("One."), en("Three.")]
    steps: list[tuple[int, int]] = []
    first = cache.clips(requests, progress=lambda done, total: steps.append((done, total)))
    assert list(first) == [en("One."), en("Two."), en("Three.")]
    assert fake.spoken == [en("One."), en("Two."), en("Three.")]
    assert steps[0] == (0, 3) and steps[-1] == (3, 3)

    again = cache.clips([*requests, en("Four.")])
    assert fake.spoken[3:] == [en("Four.")]
    for request, clip in first.items():
        assert again[request].dtype == np.float32
        assert again[request].tobytes() == clip.tobytes()


def test_cache_key_covers_engine_voice_rate_and_text(tmp_path: Path) -> None:
    cache = SpeechCache(FakeEngine(), tmp_path)
    keys = {
        cache.key(SpeechRequest("Hi.", "fake/en", 170)),
        cache.key(SpeechRequest("Hi.", "fake/de", 170)),
        cache.key(SpeechRequest("Hi.", "fake/en", 171)),
        cache.key(SpeechRequest("Hi!", "fake/en", 170)),
    }
    other_engine = FakeEngine()
    other_engine.name = "fake-engine-2"
    keys.add(SpeechCache(other_engine, tmp_path).key(SpeechRequest("Hi.", "fake/en", 170)))
    assert len(keys) == 5


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage", "directory"])
def test_damaged_entry_is_remade(tmp_path: Path, damage: str) -> None:
    fake = FakeEngine()
    cache = SpeechCache(fake, tmp_path)
    request = en("Hold the stretch.")
    original = cache.clips([request])[request]
    path = cache.path(request)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:-7])
    elif damage == "flip":
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 0x01]) + data[-99:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    else:
        path.unlink()
        path.mkdir()  # unreadable as a file, and cannot be unlinked: the write fails loudly
        with pytest.raises(BuildError, match="speech cache"):
            cache.clips([request])
        return
    remade = cache.clips([request])[request]
    assert len(fake.calls) == 2
    assert remade.tobytes() == original.tobytes()
    assert cache.clips([request])[request].tobytes() == original.tobytes()
    assert len(fake.calls) == 2


def test_cache_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    cache = SpeechCache(FakeEngine(), tmp_path)
    cache.clips([en(f"Line {n}.") for n in range(20)])
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 20
    assert not [p for p in files if p.name.startswith(".")]


def test_engine_failure_propagates_and_what_was_made_is_kept(tmp_path: Path) -> None:
    fake = FakeEngine(fail_on=["Bad."])
    cache = SpeechCache(fake, tmp_path)
    with pytest.raises(BuildError, match=r'"Bad\."'):
        cache.clips([en("Good."), en("Bad."), en("Also good.")])
    assert cache.path(en("Good.")).is_file() and cache.path(en("Also good.")).is_file()
    with pytest.raises(BuildError, match=r'"Bad\."'):
        cache.clips([en("Good."), en("Bad."), en("Also good.")])
    assert fake.calls[-1] == [en("Bad.")]  # the others came from the cache


def test_cache_stores_each_clip_as_it_comes(tmp_path: Path) -> None:
    fake = FakeEngine()
    cache = SpeechCache(fake, tmp_path)
    requests = [en("One."), en("Two."), en("Three.")]
    stored: list[bool] = []

    def progress(done: int, total: int) -> None:
        stored.append(all(cache.path(r).is_file() for r in requests[:done]))

    cache.lengths(requests, progress=progress)
    assert stored == [True, True, True, True]  # (0, 3) first, then one step per clip
    assert len(fake.calls) == 1  # one stream for every missing line


# --- tools


@pytest.fixture
def fresh_tools() -> Iterator[None]:
    caches = (
        tools.ffmpeg_path,
        tools.ffprobe_path,
        tools._system_espeak,
        tools.espeak_library,
        tools.ensure_espeak,
    )
    for cached in caches:
        cached.cache_clear()
    yield
    for cached in caches:
        cached.cache_clear()


def test_tools_find_system_programs(fresh_tools: None) -> None:
    assert Path(tools.ffmpeg_path()).name == "ffmpeg"
    probe = tools.ffprobe_path()
    assert probe is not None and Path(probe).name == "ffprobe"
    tools.ensure_espeak()


def test_tools_say_what_to_install(fresh_tools: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    for wheel in ("imageio_ffmpeg", "espeakng_loader"):
        monkeypatch.setitem(sys.modules, wheel, None)  # importing it raises ImportError
    with pytest.raises(BuildError, match=r"apt-get install ffmpeg.*coachtrack\[wheels\]"):
        tools.ffmpeg_path()
    assert tools.ffprobe_path() is None
    with pytest.raises(BuildError, match=r"apt-get install espeak-ng.*coachtrack\[wheels\]"):
        tools.ensure_espeak()


# --- the real engine


@pytest.mark.engine
def test_engine_name_carries_versions(engine: Pyttsx3Engine) -> None:
    assert engine.name.startswith("pyttsx3-2.99/espeak-ng-1.")


@pytest.mark.engine
def test_voices_list_english_and_german(engine: Pyttsx3Engine) -> None:
    ids = {voice.id for voice in engine.voices()}
    assert {"gmw/en", "gmw/de", "gmw/en-us"} <= ids
    assert not [i for i in ids if i.startswith("mb/")]
    assert engine.voice_for("en") == "gmw/en"
    assert engine.voice_for("de") == "gmw/de"
    assert engine.voice_for("EN_us") == "gmw/en-us"
    with pytest.raises(UserError, match="xx"):
        engine.voice_for("xx")


@pytest.mark.engine
def test_same_line_is_byte_identical_however_it_is_spoken(engine: Pyttsx3Engine) -> None:
    alone = engine.synthesize([en(LINE)])[en(LINE)].tobytes()
    for _ in range(9):  # each time a fresh process, never one that spoke before
        assert engine.synthesize([en(LINE)], jobs=1)[en(LINE)].tobytes() == alone
    batch = [en(OTHERS[0]), en(LINE), en(OTHERS[1]), en(LINE), en(OTHERS[2])]
    for jobs in (1, 2, 4):
        assert engine.synthesize(batch, jobs=jobs)[en(LINE)].tobytes() == alone
        assert engine.synthesize(batch[::-1], jobs=jobs)[en(LINE)].tobytes() == alone
    with Pyttsx3Engine() as another:  # a new fork server
        assert another.synthesize([en(OTHERS[1]), en(LINE)])[en(LINE)].tobytes() == alone


@pytest.mark.engine
def test_clips_are_trimmed_float32_at_the_sample_rate(engine: Pyttsx3Engine) -> None:
    clips = engine.synthesize([en(LINE), en("Release.")])
    for clip in clips.values():
        assert clip.dtype == np.float32
        assert abs(clip[0]) > SILENCE_THRESHOLD and abs(clip[-1]) > SILENCE_THRESHOLD
        assert np.max(np.abs(clip)) <= 1.0
        assert clip_to_pcm16(clip).astype(np.float32).tobytes() == (clip * 32768).tobytes()
    # About 3.3 s at 170 words per minute (untrimmed, espeak writes 2.9 s plus silence).
    assert 2.0 * SAMPLE_RATE < len(clips[en(LINE)]) < 4.0 * SAMPLE_RATE


@pytest.mark.engine
def test_slower_rate_gives_longer_clip(engine: Pyttsx3Engine) -> None:
    slow, normal, brisk = en(LINE, 120), en(LINE, 170), en(LINE, 220)
    clips = engine.synthesize([slow, normal, brisk])
    assert len(clips[slow]) > 1.2 * len(clips[normal]) > 1.2 * len(clips[brisk])


@pytest.mark.engine
def test_german_voice(engine: Pyttsx3Engine) -> None:
    text = "Atme aus, und geh etwas tiefer in die Dehnung."
    german = SpeechRequest(text, engine.voice_for("de"), 160)
    clips = engine.synthesize([german, en(text, 160)])
    assert len(clips[german]) > SAMPLE_RATE
    assert clips[german].tobytes() != clips[en(text, 160)].tobytes()


@pytest.mark.engine
def test_markup_is_neither_obeyed_nor_read_out(engine: Pyttsx3Engine) -> None:
    marked = en('Hold it. <break time="3s"/> Now release.')
    plain = en("Hold it. Now release.")
    clips = engine.synthesize([marked, plain])
    assert clips[marked].tobytes() == clips[plain].tobytes()
    assert len(clips[marked]) < 2.5 * SAMPLE_RATE  # no 3 s break


@pytest.mark.engine
def test_stdout_stays_clean(capfd: pytest.CaptureFixture[str]) -> None:
    with Pyttsx3Engine() as fresh:
        fresh.voices()
        fresh.synthesize([en("Audio saved? Not on our stdout."), en("Release.")])
    out, _ = capfd.readouterr()
    assert out == ""


@pytest.mark.engine
def test_hung_line_times_out_with_its_text() -> None:
    with (
        Pyttsx3Engine(timeout_s=0.001) as impatient,
        pytest.raises(BuildError, match=r'"Release\.".*timed out'),
    ):
        impatient.synthesize([en("Release.")])


@pytest.mark.engine
def test_silent_output_is_an_error(engine: Pyttsx3Engine) -> None:
    with pytest.raises(BuildError, match=r'only silence for "\.\.\."'):
        engine.synthesize([en("...")])
    with pytest.raises(BuildError, match='nothing to speak in "<break/>"'):
        engine.synthesize([en("<break/>")])


@pytest.mark.engine
def test_unknown_voice_is_an_error_naming_the_text(engine: Pyttsx3Engine) -> None:
    with pytest.raises(BuildError, match=r'"Release\.".*no-such-voice'):
        engine.synthesize([SpeechRequest("Release.", "no-such-voice", 170)])


@pytest.mark.engine
def test_stream_gives_the_good_lines_before_reporting_the_bad(engine: Pyttsx3Engine) -> None:
    bad = SpeechRequest("Release.", "no-such-voice", 170)
    made: list[SpeechRequest] = []
    with pytest.raises(BuildError, match=r'"Release\.".*no-such-voice') as failed:
        for request, clip in engine.stream([en(LINE), bad, en(OTHERS[0])], jobs=2):
            assert len(clip) > 0
            made.append(request)
    assert sorted(made, key=str) == sorted([en(LINE), en(OTHERS[0])], key=str)
    assert LINE not in str(failed.value)


@pytest.mark.engine
def test_stream_left_early_frees_the_engine(engine: Pyttsx3Engine) -> None:
    alone = engine.synthesize([en(LINE)])[en(LINE)].tobytes()
    stream = engine.stream([en(OTHERS[0]), en(OTHERS[1]), en(OTHERS[2])], jobs=1)
    next(stream)
    stream.close()  # two lines still to come: the server is stopped, the lock let go
    assert engine._lock.acquire(timeout=5)  # (else the next call would wait forever)
    engine._lock.release()
    assert engine.synthesize([en(LINE)])[en(LINE)].tobytes() == alone


@pytest.mark.engine
def test_unwritten_wav_fails_fast(engine: Pyttsx3Engine, tmp_path: Path) -> None:
    # pyttsx3 swallows the write error inside espeak's callback and never
    # reports the end of the utterance; the child notices espeak is idle.
    item = {"kind": "speak", "text": "Release.", "voice": "gmw/en", "rate": 170}
    started = time.monotonic()
    (reply,) = engine._run(
        [{**item, "wav": str(tmp_path / "missing" / "x.wav")}], jobs=1, scratch=str(tmp_path)
    )
    assert "without reporting the end" in reply["error"]
    assert time.monotonic() - started < 5
    # The server is still fine afterwards.
    assert len(engine.synthesize([en("Release.")])[en("Release.")]) > 0


@pytest.mark.engine
def test_cache_with_the_real_engine(engine: Pyttsx3Engine, tmp_path: Path) -> None:
    counting = CountingEngine(engine)
    cache = SpeechCache(counting, tmp_path)
    requests = [en(LINE), en(OTHERS[0])]
    fresh = cache.clips(requests)
    assert counting.asked == requests
    cached = cache.clips(requests)
    assert counting.asked == requests  # no engine call
    for request in requests:
        assert cached[request].tobytes() == fresh[request].tobytes()
        assert fresh[request].tobytes() == engine.synthesize([request])[request].tobytes()
    path = cache.path(en(LINE))
    path.write_bytes(path.read_bytes()[:-2])
    remade = cache.clips(requests)
    assert counting.asked == [*requests, en(LINE)]
    assert remade[en(LINE)].tobytes() == fresh[en(LINE)].tobytes()


WHEEL_PROBE = """
import ctypes.util, sys
ctypes.util.find_library = lambda name: None  # as on a machine without espeak-ng
from coachtrack import tools
tools.ensure_espeak()
from pyttsx3.drivers import _espeak
import espeakng_loader
maps = open("/proc/self/maps").read()
print(espeakng_loader.get_library_path() in maps, _espeak.Info().decode())
"""


@pytest.mark.engine
def test_espeak_from_the_wheel_when_the_system_has_none() -> None:
    pytest.importorskip("espeakng_loader")
    probe = subprocess.run(
        [sys.executable, "-c", WHEEL_PROBE], capture_output=True, text=True, check=True
    )
    loaded_wheel, version = probe.stdout.split()
    assert loaded_wheel == "True"
    assert version.startswith("1.")


def test_an_interrupted_cache_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SpeechCache(FakeEngine(), tmp_path)

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.clips([en("Breathe out.")])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.engine
def test_the_engine_lets_go_of_its_processes_once_a_run_is_spoken(tmp_path: Path) -> None:
    from coachtrack import build
    from coachtrack.loader import load_routine
    from coachtrack.profiles import PHONE

    routine = load_routine(Path(__file__).parent / "data" / "short.yaml")
    with Pyttsx3Engine() as real:
        studio = build.Studio(real, SpeechCache(real, tmp_path / "cache"))
        studio.plan(build.routine_track(routine, PHONE, build.BuildOptions(out_dir=tmp_path)))
        # the fork server would otherwise sit in memory while the tracks render
        assert real._server is None
        assert real.synthesize([en("Again.")])[en("Again.")].size  # and it comes back


@pytest.mark.engine
def test_the_voice_list_is_kept_between_runs(tmp_path: Path) -> None:
    kept = tmp_path / "voices.json"
    with Pyttsx3Engine(voices_file=kept) as first:
        voices = first.voices()
    assert kept.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with Pyttsx3Engine(voices_file=kept) as second:
        assert second.voices() == voices
        assert second.voice_for("de") == "gmw/de"
        assert second._server is None  # answered from the file: no process started
    for damage in ("", "{not json", '{"engine": "other-engine-1.0", "voices": []}'):
        kept.write_text(damage, encoding="utf-8")
        with Pyttsx3Engine(voices_file=kept) as again:
            assert again.voices() == voices  # asked again, and kept again
        assert json.loads(kept.read_text(encoding="utf-8"))["engine"] == again.name


def test_lengths_speak_what_is_missing_and_keep_no_clip(tmp_path: Path) -> None:
    fake = FakeEngine()
    cache = SpeechCache(fake, tmp_path)
    cache.clips([en("One.")])
    lengths = cache.lengths([en("One."), en("Two, longer."), en("One.")])
    assert list(lengths) == [en("One."), en("Two, longer.")]
    assert fake.spoken == [en("One."), en("Two, longer.")]  # each spoken once, ever
    pcm = cache.pcm(lengths)
    assert {request: len(samples) for request, samples in pcm.items()} == lengths
    assert len(fake.calls) == 2  # the second read came from the cache


def test_a_lone_track_keeps_its_speech_from_planning_and_a_library_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coachtrack import build
    from coachtrack.loader import load_routine
    from coachtrack.profiles import GYM, PHONE

    routine = load_routine(Path(__file__).parent / "data" / "short.yaml")
    fake = FakeEngine()
    cache = SpeechCache(fake, tmp_path / "cache")
    studio = build.Studio(fake, cache)
    tracks = [
        build.routine_track(routine, p, build.BuildOptions(out_dir=tmp_path)) for p in (PHONE, GYM)
    ]
    studio.plan_all(tracks)  # every line spoken and stored
    loads: list[SpeechRequest] = []
    load = SpeechCache._load

    def counted(self: SpeechCache, request: SpeechRequest) -> object:
        loads.append(request)
        return load(self, request)

    monkeypatch.setattr(SpeechCache, "_load", counted)
    lone = studio.plan(tracks[0], keep_speech=True)
    clips = studio.clips(lone, build.Timings())
    assert len(loads) == len(set(lone.lines.values()))  # each line read once, not twice
    assert set(clips) == set(lone.lines)
    assert studio._kept == {}  # handed over: the render lets go of each as it goes
    loads.clear()
    library = studio.plan_all(tracks)
    assert studio._kept == {}
    studio.clips(library[1], build.Timings())
    assert len(loads) == sum(len(set(p.lines.values())) for p in library) + len(
        set(library[1].lines.values())
    )


def test_a_voice_is_known_by_id_short_id_name_or_language() -> None:
    voices = [
        VoiceInfo("gmw/en", "English (Great Britain)", ("en-gb", "en")),
        VoiceInfo("gmw/de", "German", ("de",)),
        VoiceInfo("gmw/en-us", "English (America)", ("en-us",)),
    ]
    # espeak-ng takes an id, its last part or a name as they are...
    for spec in ("gmw/en", "en", "German", "english (great britain)", "de+f3", "en-us"):
        assert resolve_voice(voices, spec) == spec, spec
    # ...but refuses a language tag that is none of those: it gets the voice's id
    assert resolve_voice(voices, "EN-GB") == "gmw/en"
    assert resolve_voice(voices, "en-gb+f3") == "gmw/en+f3"
    # ...and spaces around a name (pasted, or from a script's variable)
    assert resolve_voice(voices, " gmw/en\t") == "gmw/en"
    assert resolve_voice(voices, "German + f3 ") == "German+f3"
    for spec in ("vulcan", "english", "", "+f3", "gmw"):
        assert resolve_voice(voices, spec) is None, spec
    assert languages_of(voices, "en+f3") == ("en-gb", "en")


def test_a_fork_server_whose_parent_is_gone_stops_without_a_traceback() -> None:
    # Ctrl-C just as coachtrack started its fork server, before it could arm the server's
    # killer: the server, left to greet nobody, printed a BrokenPipeError traceback on the
    # terminal after the prompt had come back.
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read its greeting
    server = subprocess.run(
        [sys.executable, "-c", "from coachtrack.speech import _zygote_main; _zygote_main()"],
        stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE, timeout=60,
    )  # fmt: skip
    os.close(write_end)
    assert server.returncode == 0
    assert server.stderr == b""
