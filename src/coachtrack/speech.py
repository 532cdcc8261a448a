"""Speech: text -> clip, through a small engine interface and a content-addressed disk cache.

The default engine drives pyttsx3 2.99 (espeak-ng). DESIGN invariant 7 needs a
clip to depend only on (engine, voice, rate, text), but espeak keeps state
between utterances: the same line said twice in one process comes out a few
hundred samples different. So every line is spoken by its own short-lived
process, forked from a small "fork server" that has imported pyttsx3 without
initializing espeak. A fork costs about a millisecond, so a line costs 6-9 ms
of CPU (espeak's start-up, synthesis, exit) instead of the 100+ ms of a fresh
interpreter.
"""

# numpy (and importlib.metadata) are imported inside the functions that need
# them, not here: this module is also the entry point of the fork server
# (`_zygote_main`), which must start fast and stay single-threaded to fork
# safely, and importing numpy starts BLAS threads.

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO, TypeAlias

from coachtrack import SAMPLE_RATE, files, tools
from coachtrack.errors import BuildError, UserError, cut

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Clip: TypeAlias = "npt.NDArray[np.float32]"
"""Mono speech at SAMPLE_RATE, float32 in [-1, 1], multiples of 1/32768 (16-bit PCM)."""

# A sample counts as sound above this fraction of full scale. espeak's own
# silence is digital zero and its quietest onsets are about 33/32768, so this
# trims exactly the engine's silence and no consonant.
SILENCE_THRESHOLD = 1e-3

# Tag-like markup: "<break time='3s'/>", "</emphasis>", "<!-- -->". A lone "<"
# as in "< 5 seconds" is not markup. See `plain_text`.
# A tag: a name alone (`<p>`, `</s>`, `<break/>`), or with attributes (`<break time="2s"/>`),
# or a comment or declaration (`<!-- -->`, `<?xml ...?>`). Words in angle brackets are
# prose, not markup: "<about 90 degrees>" is read, with a pause either side, as espeak-ng
# reads brackets (it was dropped unheard while the transcript showed it).
_MARKUP = re.compile(r"<(?:[!?][^<>]*|/?[A-Za-z][\w:.-]*(?:\s+[^<>]*=[^<>]*)?\s*/?)>")
# Embedded engine commands in double brackets: espeak's phoneme input
# "[[h@l'oU]]" and macOS's "[[slnc 3000]]" (3 s of silence), "[[rate 90]]".
_COMMANDS = re.compile(r"\[\[.*?\]\]", re.DOTALL)

TIMEOUT_ENV = "COACHTRACK_SPEECH_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """One line to speak: the text, an engine voice id and a rate in words per minute."""

    text: str
    voice: str  # engine voice id, e.g. espeak-ng's "gmw/en"
    rate_wpm: int


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    """A voice the engine offers."""

    id: str
    name: str
    languages: tuple[str, ...]
    gender: str | None = None


def resolve_voice(voices: Sequence[VoiceInfo], wanted: str) -> str | None:
    """What to hand the engine for `wanted`, or None if it names none of these voices.

    A voice is named by its id ("gmw/en"), the id's last part ("en-us") or its name
    ("German"), which espeak-ng takes as they are, or by a language it speaks ("en-gb"),
    which espeak-ng refuses: that becomes the voice's id. A variant after "+" ("en+f3")
    is kept, for the engine to judge.
    """
    named = _named(voices, wanted)
    if not named:
        return None
    spec, plus, variant = (part.strip() for part in wanted.partition("+"))
    folded = spec.casefold()
    if any(folded in _names(v) for v in named):
        return spec + plus + variant  # without spaces around, which espeak-ng refuses
    first = next((v for v in named if v.languages[:1] == (folded,)), named[0])
    return first.id + plus + variant


def languages_of(voices: Sequence[VoiceInfo], wanted: str) -> tuple[str, ...]:
    """The language tags of the voices `wanted` names (see `resolve_voice`), lower-cased."""
    named = _named(voices, wanted)
    return tuple(dict.fromkeys(tag.casefold() for v in named for tag in v.languages))


def speaks(tag: str, language: str) -> bool:
    """Whether a voice's language tag answers a language: `en` takes `en-gb`, not `eo`."""
    tag, language = tag.casefold(), language.casefold()
    return tag == language or tag.startswith(language + "-")


def _named(voices: Sequence[VoiceInfo], wanted: str) -> list[VoiceInfo]:
    """The voices `wanted` names: by id, the id's last part, name, or a language spoken."""
    spec = wanted.split("+", 1)[0].strip().casefold()
    if not spec:
        return []
    return [
        v for v in voices if spec in _names(v) or spec in (tag.casefold() for tag in v.languages)
    ]


def _names(voice: VoiceInfo) -> tuple[str, ...]:
    """What espeak-ng takes a voice by, case-folded: its id, the id's last part, its name."""
    return (voice.id.casefold(), voice.id.rsplit("/", 1)[-1].casefold(), voice.name.casefold())


class SpeechEngine(Protocol):
    """Turns lines of text into clips; `name` identifies engine and version in cache keys."""

    @property
    def name(self) -> str: ...

    def voices(self) -> list[VoiceInfo]:
        """Every voice the engine offers."""
        ...

    def voice_for(self, language: str) -> str:
        """The default voice id for a language code such as "en"; UserError if there is none."""
        ...

    def stream(
        self, requests: Sequence[SpeechRequest], jobs: int = 2
    ) -> Generator[tuple[SpeechRequest, Clip], None, None]:
        """Each distinct request's clip, its leading and trailing silence trimmed, in any order.

        Each comes as soon as it is made. Lines that fail are reported together, in one
        BuildError, once every other line has come: what was made can be kept. The engine
        is not to be asked anything else until the stream ends.
        """
        ...

    def close(self) -> None:
        """Let go of what the engine holds between calls (it starts again when needed)."""
        ...


def plain_text(text: str) -> str:
    """The text as the engine should read it: markup and commands dropped, whitespace collapsed."""
    # espeak is driven without its SSML and phoneme flags, so it would not
    # interpret `<break time="3s"/>` or `[[h@l'oU]]`, but it would read them out
    # ("break time equals three s slash", "h at l o u"); SAPI5 and macOS's
    # synthesizer would obey them. Texts are plain by contract, so such markup
    # is neither obeyed nor read.
    return " ".join(_MARKUP.sub(" ", _COMMANDS.sub(" ", text)).split())


def timeout_from_env(default_s: float = DEFAULT_TIMEOUT_S) -> float:
    """Seconds a line may take to speak: $COACHTRACK_SPEECH_TIMEOUT, else `default_s`."""
    written = os.environ.get(TIMEOUT_ENV, "").strip()
    if not written:
        return default_s
    try:
        seconds = float(written)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UserError(f"{TIMEOUT_ENV}={written!r}: give a number of seconds above 0, e.g. 60")
    return seconds


def trim_silence(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """The samples from the first to the last one above SILENCE_THRESHOLD (empty if none)."""
    import numpy as np

    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SILENCE_THRESHOLD * 32768)
    if loud.size == 0:
        return pcm[:0]
    return pcm[loud[0] : loud[-1] + 1]


def pcm16_to_clip(pcm: npt.NDArray[np.int16]) -> Clip:
    """16-bit samples as a float32 clip (exact: the scale is a power of two)."""
    import numpy as np

    return pcm.astype(np.float32) / np.float32(32768)


def clip_to_pcm16(clip: Clip) -> npt.NDArray[np.int16]:
    """A float clip as little-endian 16-bit samples (exact for clips made by pcm16_to_clip)."""
    import numpy as np

    scaled = np.round(clip.astype(np.float64) * 32768)
    return np.clip(scaled, -32768, 32767).astype("<i2")


# --- cache


def default_cache_folder() -> Path:
    """$COACHTRACK_CACHE_DIR/speech, else $XDG_CACHE_HOME/coachtrack/speech, else ~/.cache/..."""
    if root := os.environ.get("COACHTRACK_CACHE_DIR"):
        return Path(root) / "speech"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "coachtrack" / "speech"


_MAGIC = b"CTSPEECH"  # then: sample count (u64 LE), sha256(key + samples), samples (i16 LE)
_HEADER = struct.Struct("<8sQ32s")


class SpeechCache:
    """Clips on disk, addressed by (engine name, voice, rate, text); makes only what is missing."""

    def __init__(self, engine: SpeechEngine, folder: Path | None = None) -> None:
        self.engine = engine
        self.folder = folder if folder is not None else default_cache_folder()

    def key(self, request: SpeechRequest) -> str:
        """The content address of a request's clip."""
        fields = [self.engine.name, request.voice, request.rate_wpm, request.text]
        return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()

    def path(self, request: SpeechRequest) -> Path:
        """Where a request's clip is stored."""
        key = self.key(request)
        return self.folder / key[:2] / f"{key}.pcm"

    def clips(
        self,
        requests: Iterable[SpeechRequest],
        jobs: int = 2,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[SpeechRequest, Clip]:
        """A clip for every request: from the cache, or synthesized (once each) and stored."""
        pcm = self.pcm(requests, jobs, progress)
        return {request: pcm16_to_clip(samples) for request, samples in pcm.items()}

    def pcm(
        self,
        requests: Iterable[SpeechRequest],
        jobs: int = 2,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[SpeechRequest, npt.NDArray[np.int16]]:
        """Like `clips`, as the 16-bit samples the cache keeps: half the memory of floats."""
        unique = list(dict.fromkeys(requests))
        found = dict(self._each(unique, jobs, progress))
        return {request: found[request] for request in unique}

    def lengths(
        self,
        requests: Iterable[SpeechRequest],
        jobs: int = 2,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[SpeechRequest, int]:
        """Each clip's length in samples, synthesizing what is missing; no clip is kept.

        What plans a whole library of tracks: their clips are loaded again, one
        track at a time, when each is rendered.
        """
        unique = list(dict.fromkeys(requests))
        found = {request: len(pcm) for request, pcm in self._each(unique, jobs, progress)}
        return {request: found[request] for request in unique}

    def _each(
        self,
        unique: list[SpeechRequest],
        jobs: int,
        progress: Callable[[int, int], None] | None,
    ) -> Iterator[tuple[SpeechRequest, npt.NDArray[np.int16]]]:
        """Every request's samples, from the cache or synthesized (once each) and stored."""
        missing: list[SpeechRequest] = []
        done = 0
        for request in unique:
            stored = self._load(request)
            if stored is None:
                missing.append(request)
            else:
                done += 1
                yield request, stored
        if progress:
            progress(done, len(unique))
        if not missing:
            return
        # Each clip is stored as it comes, while the engine speaks the next lines: no
        # line waits for the slowest of a batch, progress moves, and an interrupted
        # build keeps what it made.
        with contextlib.closing(self.engine.stream(missing, jobs=jobs)) as made:
            for request, clip in made:
                pcm = clip_to_pcm16(clip)
                self._store(request, pcm)
                done += 1
                yield request, pcm  # what the cache will return later, bit for bit
                if progress:
                    progress(done, len(unique))

    def _load(self, request: SpeechRequest) -> npt.NDArray[np.int16] | None:
        """The stored samples, or None; a damaged entry is deleted."""
        import numpy as np

        path = self.path(request)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            data = b""
        if len(data) >= _HEADER.size:
            magic, count, digest = _HEADER.unpack_from(data)
            samples = data[_HEADER.size :]
            key = self.key(request).encode("ascii")
            if (
                magic == _MAGIC
                and len(samples) == 2 * count
                and count > 0
                and hashlib.sha256(key + samples).digest() == digest
            ):
                return np.frombuffer(samples, dtype="<i2").astype(np.int16)
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def _store(self, request: SpeechRequest, pcm: npt.NDArray[np.int16]) -> None:
        """Write a clip atomically: a dot-prefixed temporary file, then a rename."""
        path = self.path(request)
        samples = pcm.astype("<i2").tobytes()
        digest = hashlib.sha256(self.key(request).encode("ascii") + samples).digest()
        try:
            # The temporary file is made inside the context: a Ctrl-C at any point
            # leaves none behind (mkstemp's could appear just before a `try` took it).
            with files.temp_beside(path) as temporary:
                with temporary.open("wb") as file:
                    file.write(_HEADER.pack(_MAGIC, len(pcm), digest))
                    file.write(samples)
                os.replace(temporary, path)
        except OSError as error:
            raise BuildError(
                f"cannot write the speech cache in {self.folder}: {error} "
                "(set COACHTRACK_CACHE_DIR to use another folder)"
            ) from None


# --- pyttsx3 engine


class Pyttsx3Engine:
    """The default engine: pyttsx3 driving espeak-ng, each line in a fresh forked process."""

    def __init__(self, *, timeout_s: float | None = None, voices_file: Path | None = None) -> None:
        """`voices_file`, if given, keeps the voice list between runs (asking costs 80 ms)."""
        if not hasattr(os, "fork"):
            raise BuildError("the pyttsx3 speech engine needs a POSIX system (os.fork)")
        from importlib import metadata  # not at the top: the fork server does not need it

        tools.ensure_espeak()
        self.name = f"pyttsx3-{metadata.version('pyttsx3')}/espeak-ng-{_espeak_version()}"
        # Per line; a hung espeak fails the build after this long, not never.
        self.timeout_s = timeout_from_env() if timeout_s is None else timeout_s
        self._lock = threading.Lock()
        self._server: _ForkServer | None = None
        self._voices: list[VoiceInfo] | None = None
        self._voices_file = voices_file

    def close(self) -> None:
        """Stop the fork server (it is restarted when needed)."""
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None

    def __enter__(self) -> Pyttsx3Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def voices(self) -> list[VoiceInfo]:
        """Every espeak-ng voice pyttsx3 offers (mbrola voices left out)."""
        if self._voices is None:
            self._voices = self._stored_voices()
        if self._voices is None:
            with tempfile.TemporaryDirectory(prefix="coachtrack-speech-") as scratch:
                (reply,) = self._run([{"kind": "voices"}], jobs=1, scratch=scratch)
            if reply.get("error"):
                raise BuildError(f"cannot list the speech engine's voices: {reply['error']}")
            self._voices = [
                VoiceInfo(
                    id=voice["id"],
                    name=voice["name"],
                    languages=tuple(voice["languages"]),
                    gender=voice["gender"],
                )
                for voice in reply["voices"]
                # mbrola voices need the separate mbrola program and speak at 16 kHz.
                if not voice["id"].startswith("mb/")
            ]
            self._store_voices(self._voices)
        return list(self._voices)

    def _stored_voices(self) -> list[VoiceInfo] | None:
        """The voice list kept by an earlier run of this very engine, if any is readable."""
        if self._voices_file is None:
            return None
        try:
            stored = json.loads(self._voices_file.read_text(encoding="utf-8"))
            if stored["engine"] != self.name:
                return None
            return [
                VoiceInfo(
                    str(v["id"]),
                    str(v["name"]),
                    tuple(map(str, v["languages"])),
                    None if v["gender"] is None else str(v["gender"]),
                )
                for v in stored["voices"]
            ]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: ask the engine again

    def _store_voices(self, voices: list[VoiceInfo]) -> None:
        if self._voices_file is None:
            return
        data = {"engine": self.name, "voices": [dataclasses.asdict(v) for v in voices]}
        with contextlib.suppress(OSError):  # a convenience: if not kept, the next run asks
            files.write_text(self._voices_file, json.dumps(data))

    def voice_for(self, language: str) -> str:
        """The voice for a language code: "en" -> "gmw/en" (British), "de" -> "gmw/de"."""
        code = language.strip().lower().replace("_", "-")

        def rank(voice: VoiceInfo) -> int | None:
            if voice.id.rsplit("/", 1)[-1] == code:
                return 0
            if code in voice.languages:
                return 1
            if any(tag.split("-")[0] == code for tag in voice.languages):
                return 2
            return None

        ranked = [(r, len(v.id), v.id) for v in self.voices() if (r := rank(v)) is not None]
        if not ranked:
            raise UserError(f'no speech voice for language "{language}" (see `coachtrack voices`)')
        return min(ranked)[2]

    def synthesize(
        self, requests: Sequence[SpeechRequest], jobs: int = 2
    ) -> dict[SpeechRequest, Clip]:
        """A clip per distinct request, all at once (see `stream`)."""
        return dict(self.stream(requests, jobs))

    def stream(
        self, requests: Sequence[SpeechRequest], jobs: int = 2
    ) -> Generator[tuple[SpeechRequest, Clip], None, None]:
        """Speak each distinct request in its own fresh process, `jobs` at a time.

        Each clip comes as soon as its line is spoken, while the next lines are.
        """
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, not {jobs}")
        unique = list(dict.fromkeys(requests))
        if not unique:
            return
        texts = [plain_text(request.text) for request in unique]
        if silent := [r.text for r, text in zip(unique, texts, strict=True) if not text]:
            raise BuildError("\n".join(f'nothing to speak in "{text}"' for text in silent))
        with tempfile.TemporaryDirectory(prefix="coachtrack-speech-") as scratch:
            wavs = [Path(scratch, f"{index}.wav") for index in range(len(unique))]
            items = [
                {
                    "kind": "speak",
                    "text": text,
                    "voice": request.voice,
                    "rate": request.rate_wpm,
                    "wav": str(wav),
                }
                for request, text, wav in zip(unique, texts, wavs, strict=True)
            ]
            failures: list[tuple[int, str]] = []
            soundless: list[str] = []  # lines the engine said nothing for
            hung = False
            replies = contextlib.closing(self._replies(items, jobs=jobs, scratch=scratch))
            with replies as each:  # closed, the server free again, even if we stop early
                for index, reply in each:
                    request = unique[index]
                    if reply.get("error"):
                        hung = hung or bool(reply.get("timed_out"))
                        if not reply.get("skipped"):
                            text = cut(request.text, 80)  # the error is the news
                            failed = f'speech engine failed on "{text}": {reply["error"]}'
                            failures.append((index, failed))
                        continue
                    try:
                        clip = _clip_from_wav(wavs[index], request.text)
                    except SilentLine:
                        soundless.append(request.text)
                        continue
                    yield request, clip
            messages = [message for _, message in sorted(failures)]
            if hung:
                messages.append(
                    f"espeak-ng hung: each line may take {self.timeout_s:g} s "
                    f"(set {TIMEOUT_ENV} to a number of seconds to allow more)"
                )
            if messages:
                raise BuildError("\n".join(messages))
            if soundless:
                raise SilentLine(*soundless)

    def _run(self, items: list[dict[str, Any]], *, jobs: int, scratch: str) -> list[dict[str, Any]]:
        """Have the fork server run the items; one reply per item, in item order."""
        replies = dict(self._replies(items, jobs=jobs, scratch=scratch))
        return [replies[index] for index in range(len(items))]

    def _replies(
        self, items: list[dict[str, Any]], *, jobs: int, scratch: str
    ) -> Generator[tuple[int, dict[str, Any]], None, None]:
        """Have the fork server run the items; each item's index and reply, as they come."""
        batch = {"jobs": jobs, "timeout_s": self.timeout_s, "scratch": scratch, "items": items}
        with self._lock:
            if self._server is None or not self._server.ours():
                self._server = _ForkServer()  # (a forked copy of us needs its own)
            ended = False
            try:
                for reply in self._server.run(batch, reply_timeout_s=self.timeout_s + 10):
                    yield int(reply["index"]), reply
                ended = True
            finally:
                if not ended:
                    # Left mid-batch (an error, an interruption, or the caller stopped
                    # asking): its state is unknown. Start afresh next time.
                    self._server.close()
                    self._server = None


def _espeak_version() -> str:
    """libespeak-ng's version, e.g. "1.51" (no initialization needed)."""
    import ctypes

    library = ctypes.CDLL(tools.espeak_library())
    library.espeak_Info.restype = ctypes.c_char_p
    library.espeak_Info.argtypes = [ctypes.c_void_p]
    version: bytes | None = library.espeak_Info(None)
    return (version or b"unknown").decode("ascii", "replace")


def _clip_from_wav(path: Path, text: str) -> Clip:
    """The trimmed clip in a WAV the engine wrote; BuildError naming the text if it is unusable."""
    import numpy as np

    try:
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
            frames = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise BuildError(f'speech engine wrote no usable WAV for "{text}": no file') from None
    except (OSError, EOFError, wave.Error) as error:
        raise BuildError(f'speech engine wrote no usable WAV for "{text}": {error}') from None
    if shape != (1, 2, SAMPLE_RATE):
        raise BuildError(
            f"speech engine wrote {shape[0]} channel(s), {8 * shape[1]} bit, {shape[2]} Hz "
            f'for "{text}"; expected mono 16 bit {SAMPLE_RATE} Hz'
        )
    pcm = trim_silence(np.frombuffer(frames, dtype="<i2"))
    if pcm.size == 0:
        raise SilentLine(text)
    return pcm16_to_clip(pcm)


class SilentLine(BuildError):
    """The engine said nothing for these texts (a symbol it has no word for, say)."""

    def __init__(self, *texts: str) -> None:
        super().__init__("\n".join(f'speech engine produced only silence for "{t}"' for t in texts))
        self.texts = texts


# --- fork server: parent side


class _ForkServer:
    """The parent's handle on the fork server process: JSON lines in, JSON lines out."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from coachtrack.speech import _zygote_main; _zygote_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Its own process group: Ctrl-C goes to us alone, and close() can
            # kill the server together with any line still being spoken. (Ctrl-C
            # before the killer below is armed leaves it to find us gone, and stop.)
            start_new_session=True,
        )
        assert self._process.stdout is not None
        self._replies = _LineReader(self._process.stdout.fileno())
        self._greeted = False
        self._owner_pid = os.getpid()
        self._finalizer = weakref.finalize(self, _kill_group, self._process, self._owner_pid)

    def ours(self) -> bool:
        """Whether this process started the server (not a forked copy of it)."""
        return os.getpid() == self._owner_pid

    def run(self, batch: dict[str, Any], *, reply_timeout_s: float) -> Iterator[dict[str, Any]]:
        """Send one batch; each item's reply as it comes (in the order they finish)."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(batch).encode("utf-8") + b"\n")
            stdin.flush()
        except BrokenPipeError:
            pass  # it died; the reply reader says why
        if not self._greeted:
            hello = self._read(reply_timeout_s)
            if hello.get("error"):
                raise BuildError(str(hello["error"]))
            self._greeted = True
        while not (reply := self._read(reply_timeout_s)).get("end"):
            yield reply

    def _read(self, timeout_s: float) -> dict[str, Any]:
        try:
            line = self._replies.readline(timeout_s)
        except TimeoutError:
            raise BuildError(f"speech fork server gave no answer for {timeout_s:g} s") from None
        except EOFError:
            status = self._process.wait()
            raise BuildError(f"speech fork server stopped (exit status {status})") from None
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        """Kill the server and any line it is speaking."""
        self._finalizer()


def _kill_group(process: subprocess.Popen[bytes], owner_pid: int) -> None:
    if os.getpid() != owner_pid:
        return  # a forked copy of the owner: the server is not ours to stop
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    process.wait()


class _LineReader:
    """Lines from a file descriptor, with a timeout."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def readline(self, timeout_s: float) -> bytes:
        """The next line without its newline; TimeoutError, or EOFError at the end."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    raise EOFError
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


# --- fork server: server side
#
# Runs in its own interpreter. It imports pyttsx3 and its espeak driver (which
# loads libespeak-ng) but never initializes espeak, so every forked child starts
# from the same state and speaks as a fresh process would.


@dataclass(slots=True)
class _Child:
    index: int
    pid: int
    status_fd: int
    log: str
    deadline: float
    output: bytearray = field(default_factory=bytearray)


def _zygote_main() -> None:
    """Entry point of the fork server: serve batches read from stdin until it closes.

    It stops quietly when its parent is gone (its replies have nowhere to go).
    """
    try:
        _zygote_serve()
    except BrokenPipeError:
        os._exit(0)  # not even the flush at exit: it would fail on the same pipe


def _zygote_serve() -> None:
    """Greet the parent on stdout, then serve its batches until stdin closes."""
    replies = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    # Nothing else may write to the reply channel (pyttsx3 prints "Audio saved to ...").
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    try:
        tools.ensure_espeak()
        import pyttsx3  # noqa: F401
        from pyttsx3.drivers import espeak  # noqa: F401  (loads libespeak-ng, no init)
    except Exception as error:
        _send(replies, {"error": f"cannot load pyttsx3's espeak driver: {error}"})
        return
    _send(replies, {"error": None})
    for line in sys.stdin:
        _serve(json.loads(line), replies)


def _send(replies: TextIO, message: dict[str, Any]) -> None:
    replies.write(json.dumps(message) + "\n")


def _serve(batch: dict[str, Any], replies: TextIO) -> None:
    """Run a batch's items, `jobs` children at a time, replying as each one answers."""
    jobs: int = batch["jobs"]
    timeout_s: float = batch["timeout_s"]
    pending = deque(enumerate(batch["items"]))
    running: dict[int, _Child] = {}
    exiting: list[int] = []  # answered; their exit overlaps the next child's work
    while pending or running:
        while pending and len(running) < jobs:
            index, item = pending.popleft()
            child = _fork_child(index, item, batch["scratch"], timeout_s, replies.fileno())
            running[child.status_fd] = child
        wait_s = max(0.0, min(child.deadline for child in running.values()) - time.monotonic())
        ready, _, _ = select.select(list(running), [], [], wait_s)
        for fd in ready:
            child = running[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                child.output += chunk
                continue
            del running[fd]
            os.close(fd)
            try:
                answer: dict[str, Any] = json.loads(child.output)
                exiting.append(child.pid)
            except ValueError:
                _, status = os.waitpid(child.pid, 0)
                answer = {"error": _died(child, status)}
            _send(replies, {"index": child.index, **answer})
        now = time.monotonic()
        for fd, child in list(running.items()):
            if child.deadline <= now:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                os.waitpid(child.pid, 0)
                os.close(fd)
                del running[fd]
                message = f"timed out after {timeout_s:g} s"
                _send(replies, {"index": child.index, "error": message, "timed_out": True})
                # An engine that hangs on one line likely hangs on the next: fail
                # now, not after every line of the batch has had its full timeout.
                while pending:
                    index, _ = pending.popleft()
                    skipped = "not spoken: the engine hung on an earlier line"
                    _send(replies, {"index": index, "error": skipped, "skipped": True})
        exiting = [pid for pid in exiting if os.waitpid(pid, os.WNOHANG) == (0, 0)]
    for pid in exiting:
        os.waitpid(pid, 0)
    _send(replies, {"end": True})


def _fork_child(
    index: int, item: dict[str, Any], scratch: str, timeout_s: float, replies_fd: int
) -> _Child:
    read_fd, write_fd = os.pipe()
    log = os.path.join(scratch, f"{index}.log")
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            # Only the server answers the parent; a hung child must not keep that pipe open.
            os.close(replies_fd)
            os.close(read_fd)
            _child_main(item, write_fd, log, timeout_s)
        finally:
            os._exit(70)
    os.close(write_fd)
    return _Child(index, pid, read_fd, log, time.monotonic() + timeout_s)


def _died(child: _Child, status: int) -> str:
    """Why a child ended without an answer, with the end of what it printed to stderr."""
    how = (
        f"killed by signal {os.WTERMSIG(status)}"
        if os.WIFSIGNALED(status)
        else f"exit status {os.waitstatus_to_exitcode(status)}"
    )
    try:
        with open(child.log, encoding="utf-8", errors="replace") as file:
            log = " ".join(file.read().split())[-400:]
    except OSError:
        log = ""
    return f"engine process ended without an answer ({how}) {log}".strip()


def _child_main(item: dict[str, Any], status_fd: int, log: str, timeout_s: float) -> None:
    """In the forked child: do the item, write a JSON answer to status_fd, exit."""
    # A backstop in case the server is gone and nobody kills a hung child.
    signal.alarm(math.ceil(timeout_s) + 5)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # pyttsx3 prints "Audio saved to ..."
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log_fd, 2)  # espeak's and Python's complaints, quoted if the line fails
    try:
        if item["kind"] == "voices":
            result: dict[str, Any] = {"error": None, "voices": _child_voices()}
        else:
            _child_speak(item["text"], item["voice"], item["rate"], item["wav"], status_fd)
    except Exception as error:
        result = {"error": f"{type(error).__name__}: {error}"}
    _answer(status_fd, result)


def _answer(status_fd: int, result: dict[str, Any]) -> NoReturn:
    """Write the answer and end the child at once (from any thread)."""
    data = json.dumps(result).encode("utf-8")
    while data:
        data = data[os.write(status_fd, data) :]
    os.close(status_fd)  # the server sees the end now, not after the process is torn down
    os._exit(0)


def _child_voices() -> list[dict[str, Any]]:
    import pyttsx3

    engine = pyttsx3.init("espeak")
    return [
        {
            "id": str(voice.id),
            "name": str(voice.name),
            "languages": [str(language) for language in voice.languages],
            "gender": voice.gender,
        }
        for voice in engine.getProperty("voices")
    ]


def _child_speak(text: str, voice: str, rate: int, wav: str, status_fd: int) -> NoReturn:
    """Speak one line into `wav`; on success the process ends inside this call."""
    import pyttsx3
    from pyttsx3.drivers import _espeak, espeak

    _drain_before_stop(espeak.EspeakDriver, _espeak)
    engine = pyttsx3.init("espeak")
    errors: list[str] = []

    def on_error(**event: Any) -> None:  # pyttsx3 swallows exceptions of queued commands
        errors.append(f"{event.get('exception')}")

    def on_finished(**event: Any) -> None:
        # Runs on espeak's synthesis thread, after pyttsx3 has written and closed
        # the WAV. Ending the process here saves runAndWait's 10 ms poll.
        problem = errors[0] if errors else None
        if problem is None and not event.get("completed"):
            problem = "the utterance was cut short"
        if problem is None:
            actual = _espeak.dll.espeak_GetParameter(_espeak.RATE, 1)
            if actual != rate:
                problem = f"espeak spoke at {actual} words per minute instead of {rate}"
        _answer(status_fd, {"error": problem})

    engine.connect("error", on_error)
    engine.connect("finished-utterance", on_finished)
    # Voice and rate set explicitly before save_to_file: the driver's initial
    # values are not reliable (DESIGN invariant 7). One save_to_file per
    # runAndWait: the driver writes only the last of several queued ones.
    engine.setProperty("voice", voice)
    engine.setProperty("rate", rate)
    engine.save_to_file(text, wav)
    engine.runAndWait()
    # runAndWait may return while espeak is still speaking a long line; then
    # on_finished ends the process. If espeak goes idle without it (e.g. the
    # WAV could not be written: pyttsx3 raises inside its callback and never
    # reports the end), fail instead of waiting for the timeout.
    idle_checks = 0
    while idle_checks < 3:
        time.sleep(0.005)
        idle_checks = 0 if _espeak.IsPlaying() else idle_checks + 1
    raise RuntimeError(f"espeak finished without reporting the end of the utterance: {errors}")


def _drain_before_stop(driver_class: Any, espeak_library: Any) -> None:
    """Patch (in this child only) the driver's stop() to wait for espeak's queue first."""
    # runAndWait queues setProperty('rate') to espeak's asynchronous command
    # queue and then calls driver.stop(), which cancels that queue if it is
    # still busy: the rate change is dropped and the line comes out at the
    # driver's initial 200 wpm (measured: 4 fresh processes in 30). Nothing is
    # being spoken yet at that point, so waiting for the queue is harmless.
    original_stop = driver_class.stop

    def stop(self: Any) -> None:
        while espeak_library.IsPlaying():
            time.sleep(0.0002)
        original_stop(self)

    driver_class.stop = stop
