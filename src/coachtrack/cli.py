"""The command line: gather options, call the library, print. Nothing else."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, cast

import typer

from coachtrack import __version__, build, files, tools
from coachtrack.errors import (
    INTERRUPTED,
    STOP_SIGNALS,
    TERMINATED,
    BuildError,
    Problem,
    Terminated,
    UserError,
    let_further_stops_pass,
)
from coachtrack.loader import load_routines
from coachtrack.model import Routine
from coachtrack.profiles import PROFILES, Profile, get_profile
from coachtrack.timeline import cue_sheet, format_length, plan_text

try:  # newer typer ships its own copy of click; older ones use click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException  # type: ignore[no-redef, import-not-found, assignment, unused-ignore]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a stretching or pressure-point routine into a narrated audio track.",
)

DEFAULT_PATHS = [Path("routines")]
T = TypeVar("T")
PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Routine files or folders (every *.yaml / *.yml). Default: routines/"),
]
ProfileOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--profile", "-p", help=f"One of {', '.join(PROFILES)}; may be repeated. Default: phone"
    ),
]
OneProfileOpt = Annotated[
    list[str] | None,
    typer.Option("--profile", "-p", help=f"One of {', '.join(PROFILES)}. Default: phone"),
]
VoiceOpt = Annotated[str | None, typer.Option(help="Engine voice id (see `coachtrack voices`).")]
JobsOpt = Annotated[int, typer.Option(help="Work in parallel on this many cores.")]


def _one_profile(names: Sequence[str] | None) -> Profile:
    """The one profile of a command that makes one track (`plan`, `mix`)."""
    chosen = list(dict.fromkeys(names or ["phone"]))
    if len(chosen) > 1:
        raise UserError(f"--profile: this makes one track; give one profile, not {len(chosen)}")
    return get_profile(chosen[0])


def _profiles(names: Sequence[str] | None) -> list[Profile]:
    problems = _Problems()
    profiles = [problems.collect(get_profile, name) for name in dict.fromkeys(names or ["phone"])]
    problems.raise_any()
    return profiles


class _Problems:
    """Runs checks, keeping every user error, so that they are reported together."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def collect(self, check: Callable[..., T], *args: Any) -> T:
        """`check(*args)`; on a user error, its problems are kept (the result is not used)."""
        try:
            return check(*args)
        except UserError as error:
            self.found.extend(error.problems)
            return cast(T, None)

    def raise_any(self) -> None:
        """A UserError with every problem kept, if any."""
        if self.found:
            raise UserError(self.found)


def _say_notes(notes: Sequence[str]) -> None:
    """Print notes to stderr: things worth knowing that do not stop the run."""
    for note in notes:
        typer.echo(note, err=True)


def _studio(voice: str | None, jobs: int) -> build.Studio:
    from coachtrack.speech import Pyttsx3Engine, SpeechCache, default_cache_folder

    engine = Pyttsx3Engine(voices_file=default_cache_folder() / "voices.json")
    return build.Studio(engine, SpeechCache(engine), voice=voice, jobs=jobs)


def _routines(paths: Sequence[Path] | None) -> list[Routine]:
    """The routines `paths` name; with none given, those in `routines/`, and a problem with
    that folder says it was the default (run elsewhere, `routines: no such file or folder`
    did not say where `routines` came from)."""
    if paths:
        return load_routines(paths)
    try:
        return load_routines(DEFAULT_PATHS)
    except UserError as error:
        raise UserError([_about_the_default(p) for p in error.problems]) from None


_THE_DEFAULT = "the default when no routine is given; pass a routine file or folder"


def _about_the_default(problem: Problem) -> Problem:
    """`problem`, told that its path was the default, if it is about that folder itself."""
    if problem.line is not None or problem.path not in {str(p) for p in DEFAULT_PATHS}:
        return problem
    return dataclasses.replace(problem, message=f"{problem.message} ({_THE_DEFAULT})")


def _one_routine(path: Path) -> Routine:
    routines = load_routines([path])
    if len(routines) != 1:
        raise UserError([Problem(str(path), f"holds {len(routines)} routines; name one file")])
    return routines[0]


def _format(fmt: str) -> build.Format:
    for known in build.FORMATS:
        if fmt.lower() == known:
            return known
    raise UserError(f"--format: unknown format {fmt!r}; choose mp3, m4a or wav")


def _jobs(jobs: int) -> int:
    """`--jobs`, refused under 1 (said with the run's other problems, not alone)."""
    if jobs < 1:
        raise UserError(f"--jobs: expected 1 or more, got {jobs}")
    return jobs


def _given_path(text: str, option: str) -> Path:
    """An option's path, refused when empty: `--out ""` (an unset shell variable, say)
    would otherwise stand for the current folder."""
    if not text:
        raise UserError(f"{option}: is empty; name a path")
    return Path(text)


def _out_folder(out: Path, option: str = "--out") -> Path:
    """`out` as a folder we can write in, or an error saying why not: a file in the way is
    a usage error (exit 2, as a folder where a track goes is), a folder that cannot be
    written a build error (exit 1, as a full disk is)."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{option}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise BuildError(f"{option}: cannot write in {parent}")
            break
    return out


def _svg_file(svg: Path, routine: Path) -> Path:
    """`--svg` as a file to write the picture to, or a user error saying why not."""
    if not svg.name or svg.is_dir():
        raise UserError([Problem(str(svg), "is a folder; name the picture's file", key="--svg")])
    if files.same_file(svg, routine):
        raise UserError([Problem(str(svg), "is the routine itself", key="--svg")])
    return svg


@contextmanager
def _progress_bar() -> Iterator[build.Progress | None]:
    """A progress bar on a terminal; nothing when stdout is piped or captured."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("building", total=None)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        yield update


@app.command()
def check(paths: PathsArg = None) -> None:
    """Validate routines. Example: coachtrack check routines/"""
    for routine in _routines(paths):
        steps = len(routine.steps)
        typer.echo(f"ok  {routine.path}  ({routine.id}, {steps} step{'' if steps == 1 else 's'})")


@app.command()
def plan(
    path: Annotated[Path, typer.Argument(help="A routine file.")],
    profile: OneProfileOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="The cue sheet as JSON.")] = False,
    svg: Annotated[
        Path | None, typer.Option(help="Also draw the timeline, as an SVG picture, into this file.")
    ] = None,
    voice: VoiceOpt = None,
) -> None:
    """Show the timeline of a track. Example:
    coachtrack plan routines/night-cramp-relief.yaml --profile bedside --json"""
    problems = _Problems()
    routine = problems.collect(_one_routine, path)
    chosen = problems.collect(_one_profile, profile)
    if svg is not None:
        problems.collect(_svg_file, svg, path)
    problems.raise_any()
    if svg is not None:
        _out_folder(svg.parent, "--svg")  # before anything is spoken
    options = build.BuildOptions()
    track = build.routine_track(routine, chosen, options)
    planned = _studio(voice, 2).plan(track)
    for note in build.unsaid_notes(planned):
        print(note, file=sys.stderr)
    if svg is not None:
        from coachtrack import page

        page.write_page(svg, page.timeline_svg(cue_sheet(planned.timeline)))
    if as_json:
        typer.echo(json.dumps(cue_sheet(planned.timeline), indent=2, ensure_ascii=False))
    else:
        typer.echo(plan_text(planned.timeline), nl=False)


MusicOpt = Annotated[
    Path | None,
    typer.Option(help="A music bed under the voice (mp3, wav, ogg, m4a); not for bedside."),
]


@app.command(name="build")
def build_cmd(
    paths: PathsArg = None,
    profile: ProfileOpt = None,
    out: Annotated[str, typer.Option(help="Output folder.", metavar="PATH")] = "audio_out",
    fmt: Annotated[str, typer.Option("--format", help="mp3, m4a or wav.")] = "mp3",
    voice: VoiceOpt = None,
    music: MusicOpt = None,
    jobs: JobsOpt = 2,
    force: Annotated[bool, typer.Option(help="Rebuild even tracks that are up to date.")] = False,
) -> None:
    """Render tracks into OUT/PROFILE/. Example: coachtrack build routines/ -p phone -p gym"""
    problems = _Problems()  # the options' and the routines' problems, all at once
    out_dir = problems.collect(_given_path, out, "--out")
    chosen_format = problems.collect(_format, fmt)
    profiles = problems.collect(_profiles, profile)
    problems.collect(_jobs, jobs)
    routines = problems.collect(_routines, paths)
    problems.collect(build.check_music, music, profiles or [])
    problems.collect(tools.mp3_encoder)
    studio = problems.collect(_studio, voice, max(jobs, 1))  # an unknown --voice
    problems.raise_any()
    options = build.BuildOptions(out_dir=out_dir, fmt=chosen_format, voice=voice, jobs=jobs,
                                 force=force, music=music)  # fmt: skip
    for folder in (out_dir, *(out_dir / p.name for p in profiles)):
        _out_folder(folder)
    tracks = [build.routine_track(r, p, options) for p in profiles for r in routines]
    build.check_outputs(tracks, music)
    _say_notes(studio.foreign_voice_notes(routines))
    with _progress_bar() as progress:
        written = build.build_all(studio, tracks, options, progress)
    for path in written:
        typer.echo(str(path))


@app.command()
def mix(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Routine files or folders, in the order to play them (repeats play)."),
    ],
    out: Annotated[
        str, typer.Option(help="The session file (.mp3, .m4a or .wav).", metavar="PATH")
    ],
    profile: OneProfileOpt = None,
    music: MusicOpt = None,
    voice: VoiceOpt = None,
) -> None:
    """Render several routines as one session. Example:
    coachtrack mix routines/hamstring-warmup.yaml routines/night-cramp-relief.yaml -p gym
    --out audio_out/gym/session.mp3"""
    problems = _Problems()
    out_file = problems.collect(_given_path, out, "--out")
    chosen = problems.collect(_one_profile, profile)
    # Each path on its own: a session may play a routine twice, or two with the same id.
    loaded = {p: problems.collect(load_routines, [p]) or [] for p in dict.fromkeys(paths)}
    routines = [r for p in paths for r in loaded[p]]
    problems.collect(build.check_music, music, [chosen] if chosen else [])
    problems.collect(tools.mp3_encoder)
    studio = problems.collect(_studio, voice, 2)  # an unknown --voice
    given = routines and out_file is not None
    track = problems.collect(build.session_track, routines, chosen, out_file) if given else None
    problems.raise_any()
    assert track is not None and out_file is not None
    build.check_outputs([track], music)
    _say_notes(studio.foreign_voice_notes(routines))
    _out_folder(out_file.parent)
    options = build.BuildOptions(out_dir=out_file.parent, fmt=track.fmt, voice=voice, music=music)
    with _progress_bar() as progress:
        written = build.mix_session(studio, track, options, progress)
    typer.echo(str(written))  # once the bar is gone: it was printed onto the bar's line


@app.command(name="list")
def list_cmd(paths: PathsArg = None, voice: VoiceOpt = None) -> None:
    """List routines with their length in each profile. Example: coachtrack list"""
    routines = _routines(paths)
    options = build.BuildOptions()
    names = list(PROFILES)
    tracks = [build.routine_track(r, PROFILES[n], options) for r in routines for n in names]
    planned = iter(_studio(voice, 2).plan_all(tracks))
    # DESIGN.md's order: id, title, steps, length per profile; columns as wide as they need.
    id_width = max(len("id"), *(len(r.id) for r in routines))
    title_width = max(len("title"), *(len(r.title) for r in routines))
    columns = "  ".join(f"{n:>9}" for n in names)
    typer.echo(f"{'id':<{id_width}}  {'title':<{title_width}}  {'steps':>5}  {columns}")
    for routine in routines:
        lengths = []
        for _ in names:
            timeline = next(planned).timeline
            lengths.append(format_length(timeline.to_ms(timeline.duration)))
        columns = "  ".join(f"{x:>9}" for x in lengths)
        typer.echo(
            f"{routine.id:<{id_width}}  {routine.title:<{title_width}}  "
            f"{len(routine.steps):>5}  {columns}"
        )


@app.command()
def voices(
    language: Annotated[str | None, typer.Option(help="Only voices for this language.")] = None,
) -> None:
    """List the speech engine's voices. Example: coachtrack voices --language de"""
    from coachtrack.speech import Pyttsx3Engine, speaks

    wanted = language.strip().lower().replace("_", "-") if language is not None else None
    shown = [
        v
        for v in Pyttsx3Engine().voices()
        if not wanted or any(speaks(lang, wanted) for lang in v.languages)
    ]
    if language is not None and not shown:
        raise UserError(f"--language: no voice for {language!r}; `coachtrack voices` lists "
                        "every voice and its languages")  # fmt: skip
    id_width = max((len(v.id) for v in shown), default=0)
    lang_width = max((len(", ".join(v.languages)) for v in shown), default=0)
    for v in shown:
        typer.echo(f"{v.id:<{id_width}}  {', '.join(v.languages):<{lang_width}}  {v.name}")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version.")] = False,
) -> None:
    if version:
        typer.echo(f"coachtrack {__version__}")
        raise typer.Exit()


def _fail(code: int, lines: Sequence[str]) -> NoReturn:
    for line in lines:
        print(line, file=sys.stderr)
    sys.exit(code)


class _Stop:
    """A stop signal raises Terminated, as Ctrl-C raises KeyboardInterrupt; once is enough."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        let_further_stops_pass()
        self.signum = signum
        raise Terminated

    def stopped(self) -> NoReturn:
        """Exit as a stopped build does: 128 + the signal (143 SIGTERM, 129 SIGHUP), 130 for
        Ctrl-C."""
        if self.signum is not None:
            _fail(128 + self.signum, [TERMINATED])
        _fail(130, [INTERRUPTED])


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run a command, turning every user error into a message and exit code."""
    stop = _Stop()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {one: signal.signal(one, stop) for one in STOP_SIGNALS}
    try:
        # Outside standalone mode typer returns, rather than raises, the exit code of a
        # command it stopped: 130 for Ctrl-C (it catches the KeyboardInterrupt itself).
        status = app(args=argv, standalone_mode=False, prog_name="coachtrack")
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except ClickException as error:  # usage errors: unknown option, missing argument
        error.show()
        sys.exit(2)
    except UserError as error:
        _fail(2, [str(p) for p in error.problems])
    except BuildError as error:
        _fail(1, [f"coachtrack: {error}"])
    except (KeyboardInterrupt, typer.Abort):
        stop.stopped()
    except OSError as error:
        _fail(1, [f"coachtrack: {error}"])
    finally:
        for one, handler in previous.items():
            signal.signal(one, handler)
    if status == 130:
        stop.stopped()
    if isinstance(status, int) and status:
        sys.exit(status)
