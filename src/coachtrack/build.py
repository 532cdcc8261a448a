"""Runs the stages for each track: script, speech, timeline, mastering, export.

Tracks are independent once their speech is synthesized, so they render in
parallel (one forked worker per track, `jobs` at a time). A track whose inputs
have not changed since it was written is left alone: its fingerprint (routine,
profile, voice, engine, format, music, coachtrack version and code) is kept in the LRC
written beside it, last, so a track with a matching LRC is complete.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import signal
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from coachtrack import SAMPLE_RATE, __version__, files
from coachtrack.errors import (
    BuildError,
    Problem,
    Terminated,
    UserError,
    cut,
    let_further_stops_pass,
)
from coachtrack.loader import MAX_TRACK_MS, hours_text
from coachtrack.model import Place, Routine
from coachtrack.phrases import phrasebook, sentence
from coachtrack.profiles import Profile
from coachtrack.script import Script, make_script, make_session_script, short_title
from coachtrack.speech import (
    SilentLine,
    SpeechCache,
    SpeechEngine,
    SpeechRequest,
    languages_of,
    resolve_voice,
    speaks,
)
from coachtrack.timeline import Timeline, build_timeline, cue_sheet, with_music

if TYPE_CHECKING:  # the render stack loads only when something is rendered
    import numpy as np
    import numpy.typing as npt

    from coachtrack import export, loudness, mixer
    from coachtrack.music import DecodedMusic

    Audio = npt.NDArray[np.float32]
    Pcm = npt.NDArray[np.int16]
Format = Literal["mp3", "m4a", "wav"]
FORMATS: tuple[Format, ...] = ("mp3", "m4a", "wav")
GENRE = "Fitness"
Progress = Callable[[str, int, int], None]  # what is happening, done, total


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """How tracks are rendered, beside the routines and profiles."""

    out_dir: Path = Path("audio_out")
    fmt: Format = "mp3"
    voice: str | None = None
    jobs: int = 2
    force: bool = False
    music: Path | None = None


@dataclass(frozen=True, slots=True)
class Track:
    """One output file to make: a routine, or a session of several, in one profile."""

    id: str
    title: str
    routines: tuple[Routine, ...]
    profile: Profile
    path: Path
    fmt: Format


@dataclass(frozen=True, slots=True)
class Planned:
    """A track, timed, with every sound it plays."""

    track: Track
    script: Script
    timeline: Timeline
    lines: Mapping[str, SpeechRequest]  # each text as the speech cache keeps it
    sounds: Mapping[str, Audio]


@dataclass(slots=True)
class Timings:
    """Seconds spent per stage, printed when COACHTRACK_TIMINGS=1."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block of work as part of stage `name`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        """Count `seconds` towards stage `name`."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def merge(self, other: Mapping[str, float]) -> None:
        """Add another worker's figures."""
        for name, seconds in other.items():
            self.add(name, seconds)

    def report(self) -> None:
        """Print `timing: STAGE SECONDS` lines to stderr, if asked to."""
        if os.environ.get("COACHTRACK_TIMINGS") == "1":
            for name, seconds in self.seconds.items():
                print(f"timing: {name} {seconds:.3f}", file=sys.stderr)


class Studio:
    """The speech engine and its cache, shared by every track of one run."""

    def __init__(self, engine: SpeechEngine, cache: SpeechCache, *, voice: str | None = None,
                 jobs: int = 2, timings: Timings | None = None) -> None:  # fmt: skip
        self.voice = None if voice is None else resolve_voice(engine.voices(), voice)
        if voice is not None and self.voice is None:
            raise UserError(f"--voice: the speech engine has no voice {voice!r}; "
                            "`coachtrack voices` lists those it has")  # fmt: skip
        self.asked_voice = voice
        self.engine = engine
        self.cache = cache
        self.jobs = jobs
        self.timings = timings or Timings()
        self._kept: dict[SpeechRequest, Pcm] = {}  # a lone track's speech, from planning

    def foreign_voice_notes(self, routines: Sequence[Routine]) -> list[str]:
        """A note for each language of `routines` that the voice asked for does not speak."""
        if self.asked_voice is None:
            return []
        tags = languages_of(self.engine.voices(), self.asked_voice)
        foreign: dict[str, dict[str, None]] = {}  # language -> the ids of its routines
        for routine in routines:
            if not any(speaks(tag, routine.language) for tag in tags):
                foreign.setdefault(routine.language, {})[routine.id] = None
        return [
            f"coachtrack: note: --voice {self.asked_voice!r} speaks {cut(', '.join(tags))}, not "
            f"{language}: {cut(', '.join(ids), 80)} will sound foreign in it"
            for language, ids in foreign.items()
        ]

    def voice_for(self, language: str) -> str:
        """The voice a language is spoken in: the one asked for, or its default."""
        return self.voice or self.engine.voice_for(language)

    def script(self, track: Track) -> Script:
        """What the track says and does."""
        language = _language(track.routines)
        book = phrasebook(language)
        if len(track.routines) == 1:
            return make_script(track.routines[0], track.profile, book)
        return make_session_script(track.id, track.title, track.routines, track.profile, book)

    def speak(self, scripts: Sequence[Script], *, keep: bool = False) -> dict[SpeechRequest, int]:
        """Every line of these scripts in the speech cache, in one batch; their lengths.

        The clips themselves are kept only when asked (`keep`, for one track about to be
        rendered): a library of tracks would hold every one of them at once. Otherwise
        each track loads its own when it is rendered (`clips`).
        """
        wanted = [request for script in scripts for request in self.lines(script).values()]
        with self.timings.stage("synthesis"):
            if keep:
                self._kept = self.cache.pcm(wanted, jobs=self.jobs)
                lengths = {request: len(pcm) for request, pcm in self._kept.items()}
            else:
                lengths = self.cache.lengths(wanted, jobs=self.jobs)
        # Every line of the run is spoken now: the engine's helper processes would only
        # sit in memory while the tracks render (it starts again if asked for more).
        self.engine.close()
        return lengths

    def lines(self, script: Script) -> dict[str, SpeechRequest]:
        """What the speech cache is asked for each text of a script."""
        voice = self.voice_for(script.language)
        rate = script.profile.rate_wpm
        return {text: SpeechRequest(text, voice, rate) for text in script.texts()}

    def clips(self, planned: Planned, timings: Timings) -> dict[str, Pcm]:
        """A planned track's speech by text: kept from planning, else from the cache."""
        kept, self._kept = self._kept, {}
        if not all(request in kept for request in planned.lines.values()):
            with timings.stage("synthesis"):
                kept = self.cache.pcm(planned.lines.values(), jobs=self.jobs)
        return {text: kept[request] for text, request in planned.lines.items()}

    def plan(self, track: Track, *, keep_speech: bool = False) -> Planned:
        """Script, speak and time one track (keeping its speech for `clips`, if asked)."""
        return self.plan_all([track], keep_speech=keep_speech)[0]

    def plan_all(self, tracks: Sequence[Track], *, keep_speech: bool = False) -> list[Planned]:
        """Script, speak and time several tracks, synthesizing their lines together.

        With `keep_speech`, the clips stay in memory for the next `clips` call, which
        then need not read them again: for a single track rendered right after.
        """
        if not tracks:
            return []
        from coachtrack import sounds

        scripts = [self.script(track) for track in tracks]
        try:
            lengths = self.speak(scripts, keep=keep_speech)
        except SilentLine as error:
            if not all(map(_wordless, error.texts)):
                raise  # silent on words: the engine is at fault
            # Symbols alone the engine has no word for ("♪"): the routine's to fix.
            raise UserError(_said_nothing(error.texts, tracks, scripts)) from None
        planned = []
        with self.timings.stage("plan"):
            for track, script in zip(tracks, scripts, strict=True):
                lines = self.lines(script)
                sound_set = sounds.sound_set(track.profile.chimes, SAMPLE_RATE)
                timeline = build_timeline(
                    script,
                    {text: lengths[request] for text, request in lines.items()},
                    {name: len(audio) for name, audio in sound_set.items()},
                    SAMPLE_RATE,
                )
                _check_length(track, timeline)
                planned.append(Planned(track, script, timeline, lines, sound_set))
        return planned


def _wordless(text: str) -> bool:
    """Whether a text has no letter or digit: symbols and punctuation alone."""
    return not any(unicodedata.category(char)[0] in "LN" for char in text)


def _said_nothing(
    texts: Iterable[str], tracks: Sequence[Track], scripts: Sequence[Script]
) -> list[Problem]:
    """Where the routines write the texts the speech engine said nothing for."""
    places: dict[Place, None] = {}
    for track, script in zip(tracks, scripts, strict=True):
        for text in texts:
            written = script.written_as(text)
            for routine in track.routines:
                places.update((p, None) for p in routine.places if p.text in written)
    message = 'the speech engine says nothing for "{}"; write it in words'
    problems = [
        Problem(p.where.path, message.format(p.text), p.where.line, p.where.col, p.key)
        for p in places
    ]
    problems.sort(key=lambda p: (p.path, p.line or 0, p.col or 0))
    return problems or [Problem("coachtrack", message.format('", "'.join(texts)))]


def _check_length(track: Track, timeline: Timeline) -> None:
    """A user error for a track over the 4-hour limit (the loader's check is an estimate)."""
    if timeline.to_ms(timeline.duration) <= MAX_TRACK_MS:
        return
    where = track.routines[0].path if len(track.routines) == 1 else str(track.path)
    length = hours_text(timeline.to_ms(timeline.duration))
    raise UserError([Problem(where, f"the track would last {length}, over the 4 hour limit")])


def _language(routines: Sequence[Routine]) -> str:
    languages = Counter(r.language for r in routines)
    if len(languages) > 1:
        # The odd ones out are named: measured against the language most of them speak.
        most, _ = languages.most_common(1)[0]
        raise UserError(
            [_odd_language(r, most) for r in dict.fromkeys(routines) if r.language != most]
        )
    return routines[0].language


def _odd_language(routine: Routine, most: str) -> Problem:
    """The problem of a session's routine that speaks another language than the rest."""
    message = f"a session speaks one language: {routine.language!r} here, {most!r} in the others"
    at = routine.language_where
    if at is None:  # not written: the default
        return Problem(routine.path, message + " (the default, as no language is given)",
                       key="language")  # fmt: skip
    return Problem(routine.path, message, at.line, at.col, key="language")


def routine_track(routine: Routine, profile: Profile, options: BuildOptions) -> Track:
    """The track `build` makes of a routine: `OUT/PROFILE/ID.FORMAT`."""
    path = options.out_dir / profile.name / f"{routine.id}.{options.fmt}"
    return Track(routine.id, routine.title, (routine,), profile, path, options.fmt)


def session_track(routines: Sequence[Routine], profile: Profile, path: Path) -> Track:
    """The track `mix` makes of several routines, in order, written to `path`."""
    problems: list[Problem] = []
    fmt = next((f for f in FORMATS if path.suffix.lower() == f".{f}"), None)
    if fmt is None:
        # `.mp3` alone is a hidden file's name, with no suffix: it wants a name before it
        bare = path.name.lower() in {f".{f}" for f in FORMATS}
        message = "needs a name before its suffix" if bare else "must end in .mp3, .m4a or .wav"
        problems.append(Problem(str(path), message, key="--out"))
    try:
        _language(routines)
    except UserError as error:
        problems += error.problems
    if problems or fmt is None:
        raise UserError(problems)
    title = (
        routines[0].title
        if len(routines) == 1
        else " + ".join(short_title(r.title) for r in routines)
    )
    session_id = path.stem
    return Track(session_id, title, tuple(routines), profile, path, fmt)


def track_info(planned: Planned) -> export.TrackInfo:
    """Tags, chapters and transcript of a planned track."""
    from coachtrack import export

    timeline, routines = planned.timeline, planned.track.routines
    ms = timeline.to_ms
    sources = "; ".join(dict.fromkeys(r.source for r in routines if r.source))
    safety = " ".join(dict.fromkeys(r.safety for r in routines if r.safety))
    book = planned.script.book  # the labels in the routine's language
    comment = " ".join(
        part for part in (sentence(book.source_tag, source=sources) if sources else "",
                          book.safety_tag.format(safety=safety) if safety else "") if part
    )  # fmt: skip
    return export.TrackInfo(
        title=planned.track.title,
        album=planned.track.profile.name,
        genre=GENRE,
        comment=comment or planned.track.title,
        language=timeline.language,
        duration_ms=ms(timeline.duration),
        chapters=tuple(export.Chapter(c.title, ms(c.start), ms(c.end)) for c in timeline.chapters),
        transcript=tuple((ms(e.start), e.text) for e in timeline.spoken() if e.text),
    )


def fingerprint(track: Track, voice: str, engine: str, music: Path | None) -> str:
    """A digest of everything that decides a track's bytes."""

    def clean(routine: Routine) -> dict[str, Any]:
        data = dataclasses.asdict(routine)
        data.pop("path", None)
        data.pop("places", None)  # where its texts are written: for messages only
        data.pop("language_where", None)
        return dict(_without_where(data))

    digest = hashlib.sha256()
    content = {
        "coachtrack": __version__,
        "code": _code_digest(),
        "routines": [clean(r) for r in track.routines],
        "title": track.title,
        "profile": dataclasses.asdict(track.profile),
        "voice": voice,
        "engine": engine,
        "format": track.fmt,
        "music": files.digest(music) if music else None,
    }
    digest.update(json.dumps(content, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:32]


@functools.cache
def _code_digest() -> str:
    """A digest of coachtrack's own source: a changed renderer renders again, even when the
    version number was not raised (a checkout of another commit, an edit)."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _without_where(value: Any) -> Any:
    """Drop source locations: moving a line in the file does not change the track."""
    if isinstance(value, dict):
        return {k: _without_where(v) for k, v in value.items() if k != "where"}
    if isinstance(value, list | tuple):
        return [_without_where(v) for v in value]
    return value


def _lrc_path(track: Track) -> Path:
    return track.path.with_suffix(".lrc")


def is_up_to_date(track: Track, stamp: str) -> bool:
    """True when the track and its LRC exist and the LRC carries this fingerprint."""
    if not track.path.is_file():
        return False
    # The stamps come first: the head of the file is enough.
    return (
        _stamp_line(track, stamp, files.digest(track.path)) in _lrc_text(track, 4096).splitlines()
    )


def _stamp_line(track: Track, stamp: str, track_digest: str) -> str:
    # The track's own digest too: a build stopped between replacing the track and
    # writing its LRC leaves an old LRC beside a new track, which must not pass.
    return f"[re:coachtrack {__version__} build {stamp} {track.fmt} track {track_digest[:32]}]"


def _lrc_text(track: Track, chars: int = -1) -> str:
    """The track's LRC (its first `chars`), "" when there is none."""
    try:
        with _lrc_path(track).open(encoding="utf-8", errors="replace") as stream:
            return stream.read(chars)
    except OSError:
        return ""


def _stamps_of_other_formats(track: Track, lrc_body: str) -> list[str]:
    """The stamps the track's LRC carries for the routine's other formats, when what
    follows them is `lrc_body`, the transcript this build writes.

    An MP3 and an M4A of one routine in one folder share `R.lrc`: each keeps its own
    stamp there, so that building one does not make the other look out of date. A
    changed transcript drops them: the LRC no longer describes those tracks.
    """
    lines = _lrc_text(track).splitlines(True)
    stamps = list(itertools.takewhile(lambda line: _format_of(line) is not None, lines))
    if "".join(lines[len(stamps) :]) != lrc_body:
        return []
    return [s.rstrip("\n") for s in stamps if _format_of(s) != track.fmt]


def _format_of(stamp: str) -> str | None:
    """The format a stamp line is for (see _stamp_line), None if it is no stamp."""
    words = stamp.split()  # [re:coachtrack VERSION build STAMP FORMAT track DIGEST]
    if len(words) == 7 and words[:3] == ["[re:coachtrack", __version__, "build"]:
        return words[4] if words[4] in FORMATS else None
    return None


def render(
    planned: Planned,
    clips: dict[str, Pcm],
    stamp: str,
    music: mixer.MusicSource | None,
    timings: Timings,
    music_file: Path | None = None,
) -> None:
    """Mix, master and encode one planned track, then its page, then its LRC (last).

    `clips` are its speech by text; they are let go of as they are analysed.
    """
    from coachtrack import export, loudness, mastering, mixer, page

    track, timeline = planned.track, planned.timeline
    bed = None
    if music is not None:
        timeline = with_music(timeline)
        bed = mixer.MusicBed(music, rate=SAMPLE_RATE, duration=timeline.duration, level_db=0.0,
                             duck_db=track.profile.music_duck_db,
                             source=str(music_file or "--music"))  # fmt: skip
    mix = mixer.Mixer(timeline, clips, planned.sounds, track.profile, bed)
    with timings.stage("loudness"):
        # The raw sounds are let go of as they are analysed: a long track's speech is
        # held about once at a time (raw, then analysed, then finished), not three times.
        loss = export.LEVEL_LOSS_DB[track.fmt]
        checked = export.checks_true_peaks(
            track.fmt, timeline.sample_rate, track.profile.bitrate_kbps
        )
        mastered, result = mastering.master(
            mix, encoder_loss_db=loss, peaks_checked=checked, release=True
        )
    notes: list[str | None] = list(unsaid_notes(planned))
    if bed is None:
        notes.insert(0, quiet_note(track, result.measured_lufs - loss, ceiling=result.ceiling))
    for note in notes:
        if note:
            print(note, file=sys.stderr)
    info = track_info(planned)
    html = page.session_page(cue_sheet(timeline), title=track.title, audio_file=track.path.name,
                             profile=track.profile.name)  # fmt: skip
    parts = mixer.islands(timeline, music=bed is not None)
    # Under a bed the mixer limits the sum of voice and music where it goes over the
    # ceiling, which the solver does not foresee (a peaky song lost 0.6 LU to it): such
    # a track is measured as it is mixed, and its note goes by what it measures.
    meters: list[loudness.LoudnessMeter] = []  # of each time the track is mixed

    def mixed(gain: float) -> Iterator[Pcm]:
        """The finished track's samples, times `gain` (written again quieter: export)."""
        pcm = mixer.pcm_chunks(mastered, parts, result.ceiling)
        if gain != 1.0:
            pcm = export.quieter(pcm, gain)
        if bed is not None:
            meters.append(loudness.LoudnessMeter(timeline.sample_rate, timeline.duration))
            pcm = _metered(pcm, meters[-1])
        return _timed(pcm, timings, "mix")

    start = time.perf_counter()
    export.write_track(
        track.path,
        mixed(1.0),
        n_samples=timeline.duration,
        sample_rate=timeline.sample_rate,
        info=info,
        fmt=track.fmt,
        bitrate_kbps=track.profile.bitrate_kbps,
        true_peak_dbtp=track.profile.true_peak_dbtp,
        then=lambda written: publish(track, written, html, info, stamp),
        again=mixed,
    )
    timings.add("encode", time.perf_counter() - start - timings.seconds.get("mix", 0.0))
    if meters and (
        note := quiet_note(
            track,
            meters[-1].integrated() - loss,
            ceiling=result.ceiling,
            bed=(result.bed_db, result.bed_at_most),
        )
    ):
        print(note, file=sys.stderr)


def publish(
    track: Track, written: files.Written, html: str, info: export.TrackInfo, stamp: str
) -> bool:
    """Write a rendered track's page, then its LRC (last), beside that very track file.

    The LRC carries the fingerprint and the digest of the bytes this build wrote: its
    presence marks the track complete. Another build into the same folder may have
    replaced the track since it was written; its page and LRC are then that build's to
    write, and this one says so and writes neither (False).
    """
    from coachtrack import export, page

    with files.folder_lock(track.path.parent):
        if not written.is_at(track.path):
            print(
                f"coachtrack: note: {track.path} was replaced by another build while this one "
                "wrote it; that build's track is kept (build again to have this one's)",
                file=sys.stderr,
            )
            return False
        page.write_page(track.path.with_suffix(".html"), html)
        others = _stamps_of_other_formats(track, export.lrc_text(info))
        stamps = [_stamp_line(track, stamp, written.digest), *others]
        export.write_lrc(_lrc_path(track), info, header="".join(f"{s}\n" for s in stamps))
    return True


QUIET_LU = 1.0  # how far under its loudness target a track may land unmentioned (issue 4: 1 LU)


def unsaid_notes(planned: Planned) -> list[str]:
    """A note for each reminder the track leaves out, its hold having no room for it."""
    where = planned.track.routines[0].path if len(planned.track.routines) == 1 else None
    profile = planned.track.profile
    free = "first 3 s stay" if profile.countdown == "none" else "first 3 s and its countdown stay"
    return [
        f'coachtrack: note: {where or planned.track.path}: the reminder "{text}" does not fit '
        f"in its hold in the {profile.name} profile (a hold's {free} free), so it is not said"
        for text in dict.fromkeys(planned.timeline.unsaid)
    ]


def quiet_note(
    track: Track, lufs: float, *, ceiling: float, bed: tuple[float, bool] | None = None
) -> str | None:
    """A note for a track that could not be made as loud as its profile asks, else None.

    `ceiling`: the linear sample level the limiter held its peaks to (`Mastering.ceiling`).
    `bed`: where its music bed is set where nobody speaks, in LU over the target, and
    whether it rose all it may (`Mastering.bed_db`, `Mastering.bed_at_most`).
    """
    target = track.profile.loudness_lufs
    if lufs >= target - QUIET_LU or lufs == -math.inf:  # on target, or silent
        return None
    whose = "its sounds'" if bed is None else "its voice's and the music's"
    # The level the limiter works to, not the ceiling: it was said that the peaks "leave no
    # more room under the -1 dBTP ceiling" of a track that decoded 1.9 dB under it.
    held = (
        f"the limiter holds {whose} peaks to {20 * math.log10(ceiling):.1f} dBFS (the "
        f"{track.profile.true_peak_dbtp:g} dBTP ceiling, less a margin for the encoder)"
    )
    said = ""
    if bed is not None:
        bed_db, at_most = bed
        side = "over" if bed_db > 0 else "under"
        where = "at" if abs(bed_db) < 0.05 else f"{abs(bed_db):.1f} LU {side}"
        said = f", and the bed is set {where} the target where nobody speaks"
        said += " (the most it may)" if at_most else ", so music with softer peaks plays louder"
    return (
        f"coachtrack: note: {track.path} reaches {lufs:.1f} LUFS, under the {track.profile.name} "
        f"profile's {target:g}: {held}{said}"
    )


def _metered(chunks: Iterator[Pcm], meter: loudness.LoudnessMeter) -> Iterator[Pcm]:
    """The same chunks, fed to `meter` on their way, 5 s at a time (a minute's piece
    weighted at once held 50 MB more)."""
    step = 50 * meter.block
    for chunk in chunks:
        for offset in range(0, len(chunk), step):
            meter.feed(chunk[offset : offset + step] / 32768.0)
        yield chunk
    meter.end()


def _timed(chunks: Iterator[Any], timings: Timings, name: str) -> Iterator[Any]:
    """The same chunks, with the time spent making them counted as stage `name`."""
    while True:
        start = time.perf_counter()
        try:
            chunk = next(chunks)
        except StopIteration:
            timings.add(name, time.perf_counter() - start)
            return
        timings.add(name, time.perf_counter() - start)
        yield chunk


def write_folder_files(folder: Path) -> None:
    """The playlist and the index page of a profile folder, from the tracks in it."""
    from coachtrack import export

    with files.folder_lock(folder):  # listed and written as one build saw the folder
        export.write_playlist(folder)
        write_index(folder)


def write_index(folder: Path) -> None:
    """The index page of a folder: every track in it that has its page beside it.

    An `index.html` that coachtrack did not write is the user's, and is left alone.
    """
    from coachtrack import export, page

    index = folder / files.INDEX_PAGE
    if index.exists() and not page.is_ours(index):
        return
    rows = []
    # A track is listed with its page beside it: an MP3 first, the suffix in any case
    # (`mix --out S.MP3`).
    rank = {f".{fmt}": i for i, fmt in enumerate(FORMATS)}
    found = sorted((rank[p.suffix.lower()], p.name, p) for p in folder.iterdir()
                   if p.suffix.lower() in rank and p.is_file())  # fmt: skip
    tracks: dict[str, Path] = {}
    for _, _, path in found:
        tracks.setdefault(path.stem, path)
    for html in sorted(folder.glob("*.html")):
        if html.name == files.INDEX_PAGE or html.name.startswith("."):
            continue
        track = tracks.get(html.stem)
        if track is None:
            continue
        summary = export.summary_or_fallback(track)  # a damaged file is listed, not fatal
        rows.append((html.name, summary.title, summary.duration_ms))
    page.write_page(index, page.index_page(rows, profile=folder.name))


def build_all(
    studio: Studio,
    tracks: Sequence[Track],
    options: BuildOptions,
    progress: Progress | None = None,
) -> list[Path]:
    """Render every track that is not up to date; return every track's path.

    The music file and the profiles it plays under are the caller's to check first
    (`check_music`), with the run's other problems.
    """
    stamps = {
        t.path: fingerprint(t, studio.voice_for(_language(t.routines)), studio.engine.name,
                            options.music)
        for t in tracks
    }  # fmt: skip
    todo = [t for t in tracks if options.force or not is_up_to_date(t, stamps[t.path])]
    if progress:
        progress("speaking", 0, len(todo))
    planned = studio.plan_all(todo, keep_speech=len(todo) == 1)  # a library's would not fit

    def work(i: int) -> Timings:
        timings, item = Timings(), planned[i]
        render(item, studio.clips(item, timings), stamps[item.track.path], music, timings,
               options.music)  # fmt: skip
        return timings

    with files.new_folders(sorted({t.path.parent for t in todo})):
        music = _music(options, planned)
        try:
            jobs = _in_parallel(work, len(planned), options.jobs)
            for done, timings in enumerate(jobs, start=1):
                studio.timings.merge(timings.seconds)
                if progress:
                    progress("rendering", done, len(planned))
        except BaseException:
            # Stopped (Ctrl-C, a failed track): the tracks finished so far are kept, so their
            # folders' playlist and index list them too; other folders are left as they were
            # (and those this build made, empty, are removed). A failure to write those must
            # not hide why the build stopped.
            with suppress(OSError):
                done_folders = {t.path.parent for t in todo if is_up_to_date(t, stamps[t.path])}
                for folder in sorted(done_folders):
                    write_folder_files(folder)
            raise
    for folder in sorted({t.path.parent for t in todo}):
        write_folder_files(folder)
    studio.timings.report()
    return [t.path for t in tracks]


def check_music(music: Path | None, profiles: Sequence[Profile]) -> None:
    """A UserError if a music bed is asked for under a profile that has none, or is no file
    ffmpeg decodes (its first second is decoded: `_music` decodes the rest after planning)."""
    if music is None:
        return
    from coachtrack.music import probe_music

    problems: list[Problem] = []
    refused = sorted({p.name for p in profiles if not p.music_allowed})
    if refused:
        message = (
            f"--music: the {', '.join(refused)} profile has no music bed "
            "(it must not wake a sleeping partner); leave out --music or that profile"
        )
        problems.append(Problem("coachtrack", message))
    try:
        probe_music(music, SAMPLE_RATE)
    except UserError as error:
        problems += error.problems
    if problems:
        raise UserError(problems)


def check_outputs(tracks: Sequence[Track], music: Path | None) -> None:
    """A UserError for outputs that would overwrite what must stay, or cannot be written."""
    problems: list[Problem] = []
    written: list[Path] = []  # every file the run writes
    for track in tracks:
        html = track.path.with_suffix(".html")
        outputs = (track.path, _lrc_path(track), html)
        written += outputs
        if html.name.lower() == files.INDEX_PAGE:  # a session's: the loader refuses the id
            message = (f"a track named '{track.path.stem}' would have its page overwritten "
                       f"by the folder's {files.INDEX_PAGE}; choose another name")  # fmt: skip
            problems.append(Problem(str(track.path), message, key="--out"))
        if music is not None and any(files.same_file(music, f) for f in outputs):
            problems.append(Problem(str(music), "is where the track would be written; "
                                                "choose another --out", key="--music"))  # fmt: skip
        problems += [Problem(str(f), _IN_THE_WAY) for f in outputs if f.is_dir()]
    for folder in dict.fromkeys(track.path.parent for track in tracks):
        beside = (folder / files.PLAYLIST_NAME, folder / files.INDEX_PAGE)
        written += beside
        problems += [Problem(str(f), _IN_THE_WAY) for f in beside if f.is_dir()]
    # A routine named like an output (`mix s.html --out s.mp3`) would be written over.
    for path in dict.fromkeys(Path(r.path) for track in tracks for r in track.routines):
        if any(files.same_file(path, f) for f in written):
            problems.append(Problem(str(path), _OVER_A_ROUTINE))
    if problems:
        raise UserError(problems)


_IN_THE_WAY = "a folder is in the way of this output; move it or choose another --out"
_OVER_A_ROUTINE = (
    "is a routine this run reads, and coachtrack would write an output over it; "
    "choose another --out"
)


def _music(options: BuildOptions, planned: Sequence[Planned]) -> DecodedMusic | None:
    """The music bed's samples, as many as the longest of `planned` plays: a bed never
    plays past its track's end (an hour-long mix under a short track was decoded whole).

    They are kept on disk beside the first track, and read as they are played.
    """
    if options.music is None or not planned:
        return None
    from coachtrack.music import load_music

    longest = max(p.timeline.duration for p in planned)
    folder = planned[0].track.path.parent  # made by the caller
    return load_music(options.music, SAMPLE_RATE, longest / SAMPLE_RATE, folder=folder)


def _in_parallel(work: Callable[[int], Timings], count: int, jobs: int) -> Iterator[Timings]:
    """Run `work(i)` for every i, in up to `jobs` forked workers; yield as each finishes."""
    if jobs <= 1 or count <= 1 or not hasattr(os, "fork"):
        for i in range(count):
            yield work(i)
        return
    running: dict[int, tuple[int, int]] = {}  # pid -> (index, read end of its pipe)
    pending = list(range(count))
    failures: list[str] = []
    try:
        while pending or running:
            while pending and len(running) < jobs and not failures:
                i = pending.pop(0)
                pid, fd = _fork_worker(work, i)
                running[pid] = (i, fd)
            if not running:
                break
            pid, status = os.wait()
            if pid not in running:
                continue
            _, fd = running.pop(pid)
            outcome = _read_all(fd)
            if os.waitstatus_to_exitcode(status) == 0:
                yield Timings(json.loads(outcome))
            else:
                failures.append(outcome or f"a worker stopped with status {status}")
    except BaseException as error:
        # Ctrl-C at a terminal reaches the workers too (one process group): they get a
        # moment to clean up and go. Whatever is still running then (`kill -INT` reaches
        # only this process, and so does SIGTERM) is stopped here; they remove their own
        # temporary files.
        if isinstance(error, KeyboardInterrupt) and not isinstance(error, Terminated):
            _reap(running, within_s=WORKER_GRACE_S)
        for pid in running:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        for pid in running:
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)
        raise
    if failures:
        raise BuildError("\n".join(failures))


WORKER_GRACE_S = 2.0  # for workers Ctrl-C reached too, before they are sent it themselves


def _reap(running: dict[int, tuple[int, int]], *, within_s: float) -> None:
    """Wait up to `within_s` for the running workers to end, dropping those that did."""
    deadline = time.monotonic() + within_s
    while running and time.monotonic() < deadline:
        for pid in list(running):
            with suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            os.close(running.pop(pid)[1])
        time.sleep(0.02)


def _fork_worker(work: Callable[[int], Timings], i: int) -> tuple[int, int]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: render, report through the pipe, and never return
        os.close(read)
        code = 0
        try:
            message = json.dumps(work(i).seconds)
        except KeyboardInterrupt:
            let_further_stops_pass()  # once is enough
            message, code = "interrupted", 130
        except (BuildError, OSError) as error:
            message, code = str(error), 1
        except BaseException as error:  # a bug: keep its traceback for the report
            import traceback

            message, code = "".join(traceback.format_exception(error)), 1
        with os.fdopen(write, "w", encoding="utf-8") as stream:
            stream.write(message)
        os._exit(code)
    os.close(write)
    return pid, read


def _read_all(fd: int) -> str:
    with os.fdopen(fd, encoding="utf-8", errors="replace") as stream:
        return stream.read()


def mix_session(
    studio: Studio, track: Track, options: BuildOptions, progress: Progress | None = None
) -> Path:
    """Render several routines as one continuous session track, with its playlist entry
    (its music checked first, as for `build_all`)."""
    from coachtrack import export

    if progress:
        progress("speaking", 0, 1)
    stamp = fingerprint(track, studio.voice_for(_language(track.routines)), studio.engine.name,
                        options.music)  # fmt: skip
    planned = studio.plan(track, keep_speech=True)
    if progress:
        progress("rendering", 0, 1)
    timings = Timings()
    with files.new_folders([track.path.parent]):
        music = _music(options, [planned])
        render(planned, studio.clips(planned, timings), stamp, music, timings, options.music)
    studio.timings.merge(timings.seconds)
    if progress:
        progress("rendering", 1, 1)
    # `--out FILE` may be anywhere: what is already there stays the user's.
    with files.folder_lock(track.path.parent):
        export.add_to_playlist(track.path)
        write_index(track.path.parent)
    studio.timings.report()
    return track.path
