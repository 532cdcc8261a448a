"""Nothing lost, nothing let in: fuzzed routines through the planner, and faults through the CLI.

The faults are the ones users meet: Ctrl-C and `kill -9` in the middle of a build,
two builds into one folder, a damaged speech cache, a speech engine that hangs or
writes nothing, espeak-ng or ffmpeg missing, an `--out` that cannot be a folder.
Each runs the real `coachtrack` in a fresh process. Faults inside the speech engine
are injected by a `sitecustomize` module written for the test (see FAULTS), so the
program itself carries no test hooks.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from coachtrack import SAMPLE_RATE, build, files
from coachtrack.errors import UserError
from coachtrack.export import TrackInfo, read_track_info
from coachtrack.loader import MAX_TRACK_MS, load_routine, longest_track_ms
from coachtrack.model import Routine
from coachtrack.phrases import phrasebook
from coachtrack.profiles import PROFILES
from coachtrack.script import make_script
from coachtrack.sounds import sound_set
from coachtrack.speech import SpeechCache
from coachtrack.timeline import Timeline, build_timeline

from .e2e import FOREGROUND_JOB, decode, killed_at_the_end, samples
from .fakes import FakeEngine
from .test_loader_fuzz import FUZZ, documents, routine_shaped

ROOT = Path(__file__).parent.parent
SHORT = ROOT / "tests" / "data" / "short.yaml"
LONG = ROOT / "routines" / "hamstring-cramps.yaml"  # a 30-minute track: time to interrupt it

# Pending patches to cli.py, build.py, export.py and page.py (see docs/RELIABILITY.md, "Pending").
# Remove each marker once its patch is in: the test then passes, and strict=True makes
# a forgotten marker fail.


# --- the planner, fuzzed ---------------------------------------------------------------


def word_model_samples(text: str, rate_wpm: int) -> int:
    """A clip as long as the loader's length bound assumes speech to be, at this rate."""
    return max(1, round(len(text.split()) * 60_000 / rate_wpm * SAMPLE_RATE / 1000))


SOUNDS = {chimes: {k: len(v) for k, v in sound_set(chimes, SAMPLE_RATE).items()}
          for chimes in {p.chimes for p in PROFILES.values()}}  # fmt: skip


def plan_everywhere(routine: Routine) -> list[Timeline]:
    """The routine planned in every profile, with word-model clip lengths."""
    timelines = []
    for profile in PROFILES.values():
        script = make_script(routine, profile, phrasebook(routine.language))
        lengths = {text: word_model_samples(text, profile.rate_wpm) for text in script.texts()}
        timelines.append(build_timeline(script, lengths, SOUNDS[profile.chimes], SAMPLE_RATE))
    return timelines


def check_planned(routine: Routine) -> None:
    """Whatever the loader accepts, the planner places within the loader's length bound."""
    bound = math.ceil(longest_track_ms(routine) * SAMPLE_RATE / 1000)
    for timeline in plan_everywhere(routine):
        assert 0 < timeline.duration <= bound
        assert timeline.duration <= MAX_TRACK_MS * SAMPLE_RATE // 1000
        starts = [event.start for event in timeline.events]
        assert starts == sorted(starts)
        assert all(0 <= e.start <= e.end <= timeline.duration for e in timeline.events)
        chapters = timeline.chapters
        assert chapters and chapters[0].start == 0 and chapters[-1].end == timeline.duration
        assert all(a.end == b.start for a, b in itertools.pairwise(chapters))


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("planner-fuzz")


def load_and_plan(path: Path) -> None:
    """A routine that plans cleanly, or a UserError: never anything else."""
    try:
        routine = load_routine(path)
    except UserError as error:
        assert error.problems
        return
    check_planned(routine)


@FUZZ
@given(text=documents)
def test_any_text_loads_and_plans_or_fails_cleanly(fuzz_folder: Path, text: str) -> None:
    path = fuzz_folder / "any.yaml"
    path.write_text(text, encoding="utf-8", newline="")
    load_and_plan(path)


@FUZZ
@given(data=routine_shaped())
def test_routine_shaped_yaml_loads_and_plans_or_fails_cleanly(
    fuzz_folder: Path, data: dict[str, object]
) -> None:
    path = fuzz_folder / "shaped.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    load_and_plan(path)


@st.composite
def long_routines(draw: st.DrawFn) -> str:
    """Routines near the 4-hour limit: many repetitions, counted aloud, of short actions."""
    inner = draw(
        st.lists(
            st.sampled_from(["{hold: 1s}", "{hold: 5s..20s}", "{say: Lift.}", "{pause: 2s}",
                             "{say: Breathe in and lift the leg slowly.}", "{hold: 3m}"]),
            min_size=1, max_size=3,
        )
    )  # fmt: skip
    times = draw(st.integers(1, 4000))
    sides = draw(st.sampled_from(["", "    sides: [right, left]\n"]))
    head = f"title: Many\nsteps:\n  - title: Reps\n{sides}    do:\n"
    body = f"{{repeat: {times}, do: [{', '.join(inner)}]}}"
    rounds = draw(st.sampled_from([None, 1, 2, 12]))  # rounds of it, counted as rounds
    if rounds is not None:
        body = f"{{repeat: {rounds}, do: [{{say: Set.}}, {body}]}}"
    return head + f"      - {body}\n"


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 2))  # each plans thousands of items
@given(text=long_routines())
def test_what_the_loader_accepts_plans_to_at_most_4_hours(fuzz_folder: Path, text: str) -> None:
    path = fuzz_folder / "long.yaml"
    path.write_text(text, encoding="utf-8")
    load_and_plan(path)


def test_the_length_bound_holds_for_the_shipped_routines() -> None:
    for path in sorted((ROOT / "routines").glob("*.yaml")):
        check_planned(load_routine(path))


HOLDS_3H30 = "title: Long\nsteps:\n  - title: Hold\n    do: [{repeat: 7, do: [{hold: 30m}]}]\n"


def test_a_session_over_4_hours_is_refused_once_planned(tmp_path: Path) -> None:
    # Each routine is under 4 hours, so the loader lets them in; `mix` joins them.
    routines = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(HOLDS_3H30 + f"id: {name}\n", encoding="utf-8")
        routines.append(load_routine(path))
    engine = FakeEngine()
    studio = build.Studio(engine, SpeechCache(engine, tmp_path / "cache"))
    session = build.session_track(routines, PROFILES["phone"], tmp_path / "session.mp3")
    with pytest.raises(UserError, match=r"the track would last 7h \d+m, over the 4 hour limit"):
        studio.plan(session)  # in hours, as the loader says it (not "420:07")


def test_a_session_reports_each_stage_it_goes_through(tmp_path: Path) -> None:
    # On a terminal `mix` sat at "speaking 0%" until it ended, and never showed rendering.
    path = tmp_path / "r.yaml"
    path.write_text("title: T\nsteps:\n  - title: S\n    do: [{say: Go.}]\n", "utf-8")
    routine = load_routine(path)
    engine = FakeEngine()
    studio = build.Studio(engine, SpeechCache(engine, tmp_path / "cache"))
    session = build.session_track([routine, routine], PROFILES["gym"], tmp_path / "s.wav")
    seen: list[tuple[str, int, int]] = []
    options = build.BuildOptions(out_dir=tmp_path, fmt=session.fmt)
    written = build.mix_session(studio, session, options, lambda *stage: seen.append(stage))
    assert written.is_file()
    assert seen == [("speaking", 0, 1), ("rendering", 0, 1), ("rendering", 1, 1)]


# --- running the CLI with faults ---------------------------------------------------------

FAULTS = """
import os
import sys

_fault = os.environ.get("COACHTRACK_TEST_FAULT", "")
if _fault == "no-espeak":  # as on a machine without libespeak-ng and without the wheel
    import ctypes.util

    _find_library = ctypes.util.find_library
    ctypes.util.find_library = lambda name: None if "espeak" in name else _find_library(name)
    sys.modules["espeakng_loader"] = None
elif _fault == "no-ffmpeg-wheel":
    sys.modules["imageio_ffmpeg"] = None
elif _fault in ("hang", "no-wav"):  # in the speech engine's forked child
    import coachtrack.speech as _speech

    def _child_speak(text, voice, rate, wav, status_fd):
        if _fault == "hang":
            import time

            time.sleep(3600)
        _speech._answer(status_fd, {"error": None})  # "done", and no WAV written

    _speech._child_speak = _child_speak
"""


@dataclass(frozen=True, slots=True)
class Cli:
    """Runs `coachtrack` in fresh processes with a given speech cache and faults."""

    cache: Path
    cwd: Path
    faults: Path  # a folder holding sitecustomize.py

    def env(self, fault: str = "", **extra: str) -> dict[str, str]:
        env = {**os.environ, "COACHTRACK_CACHE_DIR": str(self.cache), **extra}
        if fault:
            env["COACHTRACK_TEST_FAULT"] = fault
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.faults),
                                                              env.get("PYTHONPATH")]))  # fmt: skip
        return env

    def run(
        self, *args: str, fault: str = "", timeout: float = 120, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coachtrack", *args],
            capture_output=True, text=True, env=self.env(fault, **extra), cwd=self.cwd,
            timeout=timeout, check=False,
        )  # fmt: skip

    def start(self, *args: str) -> subprocess.Popen[str]:
        """A build in its own process group, as a shell starts a foreground job."""
        return subprocess.Popen(
            [sys.executable, "-m", "coachtrack", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=self.env(), cwd=self.cwd, **FOREGROUND_JOB,
        )  # fmt: skip


def make_cli(root: Path, cache: Path | None = None) -> Cli:
    faults = root / "faults"
    faults.mkdir(exist_ok=True)
    (faults / "sitecustomize.py").write_text(FAULTS, encoding="utf-8")
    return Cli(cache=cache or root / "cache", cwd=root, faults=faults)


def temporary_files(folder: Path) -> list[str]:
    """Dot-prefixed files anywhere under `folder`: what an interrupted writer leaves."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.is_file())


def processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment holds `text` (e.g. a test's folder)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if proc.name == str(os.getpid()):
                continue
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            if text.encode() in seen:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def wait_until_gone(text: str, timeout_s: float = 10) -> list[str]:
    """Wait for every process mentioning `text` to end; those still running after."""
    deadline = time.monotonic() + timeout_s
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_entries_are_whole(cache: Path) -> list[Path]:
    """Every speech cache entry, each checked against its own digest (see SpeechCache)."""
    entries = sorted((cache / "speech").rglob("*.pcm"))
    header = struct.Struct("<8sQ32s")
    for entry in entries:
        data = entry.read_bytes()
        magic, count, digest = header.unpack_from(data)
        body = data[header.size :]
        assert magic == b"CTSPEECH" and len(body) == 2 * count > 0, entry
        assert hashlib.sha256(entry.stem.encode() + body).digest() == digest, entry
    return entries


@dataclass(frozen=True, slots=True)
class Drill:
    """A routine `drill` with a short and a long version, and its short track already built."""

    cli: Cli  # its cache holds every line of the short version
    long_cli: Cli  # its cache holds every line of the long version
    short: Path  # routine files
    long: Path
    previous: Path  # an out folder holding phone/drill.mp3 built from the short version
    clean_short: str  # sha256 of a clean (empty-cache) build of the short version


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    root = tmp_path_factory.mktemp("drill")
    cli, long_cli = make_cli(root), make_cli(root, cache=root / "long-cache")
    short, long = root / "short" / "drill.yaml", root / "long" / "drill.yaml"
    for path, source, routine_id in ((short, SHORT, "short"), (long, LONG, "hamstring-cramps")):
        path.parent.mkdir()
        text = source.read_text(encoding="utf-8").replace(f"id: {routine_id}", "id: drill")
        path.write_text(text, encoding="utf-8")
    with ThreadPoolExecutor(2) as pool:  # the long version's speech, cached meanwhile
        warm = pool.submit(long_cli.run, "plan", str(long))
        built = cli.run("build", str(short), "--out", "previous")
    assert built.returncode == 0 and warm.result().returncode == 0, built.stderr
    clean = sha256(root / "previous" / "phone" / "drill.mp3")
    return Drill(cli, long_cli, short, long, root / "previous", clean)


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A long build stopped by a signal while it wrote its track over a previous one."""

    result: subprocess.CompletedProcess[str]
    out: Path
    previous_sha256: str
    seconds_to_stop: float


def interrupt_build(
    drill: Drill, name: str, sig: signal.Signals, *extra: str, group: bool | None = None
) -> Interrupted:
    """Rebuild drill's track from its long version and stop it while the track is written:
    `sig` to the process group (as a terminal sends Ctrl-C) or to coachtrack alone (as
    `kill PID` does); by default, SIGINT to the group, any other to coachtrack alone."""
    out = drill.cli.cwd / name
    shutil.copytree(drill.previous, out)
    folder = out / "phone"
    with killed_at_the_end(
        drill.long_cli.start("build", str(drill.long), "--out", str(out), *extra)
    ) as proc:
        deadline = time.monotonic() + 120
        while not [p for p in folder.iterdir() if p.name.startswith(".drill.mp3.")]:
            assert proc.poll() is None, f"the build ended before writing: {proc.communicate()}"
            assert time.monotonic() < deadline, "the build never started writing its track"
            time.sleep(0.001)
        if sig == signal.SIGINT if group is None else group:
            os.killpg(proc.pid, sig)  # as Ctrl-C does: to the terminal's foreground group
        else:
            proc.send_signal(sig)  # as `kill -9 PID` does
        stopped = time.monotonic()
        out_text, err_text = proc.communicate(timeout=60)
        seconds = time.monotonic() - stopped
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out_text, err_text)
    return Interrupted(result, out, drill.clean_short, seconds)


STOPS = {
    # Ctrl-C: to the terminal's foreground group, coachtrack and every process it started.
    "ctrl-c": (
        signal.SIGINT,
        (),
        130,
        "coachtrack: interrupted; nothing half-written was left behind",
    ),
    # `kill PID`: SIGTERM to coachtrack alone, while two workers render a track each.
    "sigterm": (
        signal.SIGTERM,
        ("-p", "phone", "-p", "gym"),
        143,
        "coachtrack: terminated; nothing half-written was left behind",
    ),
    # `kill -INT PID` (a supervisor, `timeout --foreground`): to coachtrack alone, with two
    # workers; they kept rendering and wrote both tracks, 15 to 20 s later.
    "sigint-alone": (
        signal.SIGINT,
        ("-p", "phone", "-p", "gym"),
        130,
        "coachtrack: interrupted; nothing half-written was left behind",
    ),
    # The terminal closed, the SSH link dropped: SIGHUP to the whole group. It left
    # temporary files and speech scratch folders.
    "sighup": (
        signal.SIGHUP,
        ("-p", "phone", "-p", "gym"),
        129,
        "coachtrack: terminated; nothing half-written was left behind",
    ),
}


@pytest.fixture(scope="module", params=list(STOPS))
def stopped(request: pytest.FixtureRequest, drill: Drill) -> tuple[Interrupted, int, str]:
    sig, extra, code, message = STOPS[request.param]
    group = {"sigint-alone": False, "sighup": True}.get(request.param)
    return interrupt_build(drill, request.param, sig, *extra, group=group), code, message


@pytest.fixture(scope="module")
def killed(drill: Drill) -> Interrupted:
    stopped = interrupt_build(drill, "killed", signal.SIGKILL)
    # What the killed build started (ffmpeg, the speech server) ends without it.
    assert wait_until_gone(str(stopped.out)) == []
    return stopped


@pytest.mark.engine
def test_a_stopped_build_keeps_the_previous_track_and_removes_temporary_files(
    stopped: tuple[Interrupted, int, str],
) -> None:
    interrupted = stopped[0]
    seen = interrupted.result  # shown with every failure below
    assert "Traceback" not in seen.stderr, seen
    assert temporary_files(interrupted.out) == [], seen
    track = interrupted.out / "phone" / "drill.mp3"
    if interrupted.out.name == "sigint-alone" and sha256(track) != interrupted.previous_sha256:
        # `kill -INT` reached coachtrack alone, and the worker writing this track finished
        # it in the 2 s it had to stop on its own (seen twice in some 30 runs): the new
        # track is there whole, as long as its tags say, and longer than the previous one.
        written = read_track_info(track)
        assert abs(len(decode(track)) * 1000 / SAMPLE_RATE - written.duration_ms) <= 30, seen
        before = read_track_info(interrupted.out.parent / "previous" / "phone" / "drill.mp3")
        assert written.duration_ms > before.duration_ms, seen
        assert wait_until_gone(str(interrupted.out)) == [], seen
        return
    assert sha256(track) == interrupted.previous_sha256, seen
    # SIGINT to coachtrack alone: its workers get 2 s to stop on their own (Ctrl-C may
    # have reached them too), in which the short gym track may be written (whole, renamed
    # into place; without its LRC it is not up to date, and the next build renders it).
    if interrupted.out.name != "sigint-alone":
        assert not (interrupted.out / "gym").exists(), seen  # the folder it made, empty, went
    previous = interrupted.out.parent / "previous" / "phone"
    for name in ("drill.lrc", "playlist.m3u8", "index.html"):  # nothing finished: untouched
        assert (interrupted.out / "phone" / name).read_bytes() == (previous / name).read_bytes()
    assert wait_until_gone(str(interrupted.out)) == [], seen  # no worker or encoder left
    assert interrupted.seconds_to_stop < 10, seen


@pytest.mark.engine
def test_a_stopped_build_exits_with_its_signal_saying_so(
    stopped: tuple[Interrupted, int, str],
) -> None:
    interrupted, code, message = stopped
    assert interrupted.result.returncode == code, interrupted.result
    assert interrupted.result.stderr.strip() == message
    assert interrupted.result.stdout == ""


@pytest.mark.engine
def test_a_stopped_library_build_lists_the_tracks_it_finished(tmp_path: Path, drill: Drill) -> None:
    cli = make_cli(tmp_path)
    shutil.copytree(drill.long_cli.cache, cli.cache)
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(drill.long, library / "drill.yaml")
    short = drill.short.read_text(encoding="utf-8").replace("id: drill", "id: first")
    (library / "first.yaml").write_text(short, encoding="utf-8")
    folder = tmp_path / "out" / "phone"
    with killed_at_the_end(cli.start("build", str(library), "--out", "out", "--jobs", "2")) as proc:
        deadline = time.monotonic() + 120
        while not (folder / "first.lrc").exists() or not [
            p for p in folder.iterdir() if p.name.startswith(".drill.mp3.")
        ]:
            assert proc.poll() is None, f"it ended too soon: {proc.communicate()}"
            assert time.monotonic() < deadline, "the build never wrote the long track"
            time.sleep(0.001)
        os.killpg(proc.pid, signal.SIGINT)
        _, err_text = proc.communicate(timeout=60)
    assert proc.returncode == 130, err_text
    assert sorted(p.name for p in folder.iterdir()) == [
        "first.html", "first.lrc", "first.mp3", "index.html", "playlist.m3u8"
    ]  # fmt: skip
    assert 'href="first.html"' in (folder / "index.html").read_text(encoding="utf-8")
    assert (folder / "playlist.m3u8").read_text(encoding="utf-8").endswith("\nfirst.mp3\n")


Stopped = tuple[Cli, Path, subprocess.CompletedProcess[str], int]  # and the exit status due


@pytest.fixture(scope="module", params=list(STOPS))
def stopped_while_speaking(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Stopped:
    root = tmp_path_factory.mktemp(f"{request.param}-speaking")
    cli = make_cli(root)
    with killed_at_the_end(cli.start("build", str(LONG), "--out", "out")) as proc:
        deadline = time.monotonic() + 60
        while len(list((cli.cache / "speech").rglob("*.pcm"))) < 5:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no speech was cached"
            time.sleep(0.001)
        sig, _, code, _ = STOPS[request.param]
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)  # coachtrack alone: it must stop the engine itself
        out_text, err_text = proc.communicate(timeout=60)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out_text, err_text)
    return cli, root, result, code


@pytest.mark.engine
def test_stopped_while_speaking_keeps_the_cache_whole(stopped_while_speaking: Stopped) -> None:
    cli, root, result, _ = stopped_while_speaking
    assert "Traceback" not in result.stderr, result
    assert cache_entries_are_whole(cli.cache)
    assert temporary_files(cli.cache) == []
    assert not (root / "out" / "phone" / "hamstring-cramps.mp3").exists()
    assert temporary_files(root / "out") == []
    assert wait_until_gone(str(cli.cache)) == []  # the speech server is gone


@pytest.mark.engine
def test_stopped_while_speaking_exits_130_or_143(stopped_while_speaking: Stopped) -> None:
    _, _, result, code = stopped_while_speaking
    assert result.returncode == code, result


@pytest.mark.engine
def test_a_killed_build_never_leaves_a_partial_track_under_its_name(killed: Interrupted) -> None:
    assert killed.result.returncode == -signal.SIGKILL, killed.result
    folder = killed.out / "phone"
    assert sha256(folder / "drill.mp3") == killed.previous_sha256
    # Whatever it left behind is dot-prefixed, so players and playlists never see it.
    before = {p.name: sha256(p) for p in (killed.out.parent / "previous" / "phone").iterdir()}
    after = {p.name: sha256(p) for p in folder.iterdir() if not p.name.startswith(".")}
    assert after == before


@pytest.mark.engine
def test_the_next_build_removes_what_a_killed_build_left(drill: Drill, killed: Interrupted) -> None:
    # --force: the previous track is up to date, and only a build that writes it cleans up.
    result = drill.cli.run("build", str(drill.short), "--out", str(killed.out), "--force")
    assert result.returncode == 0, result.stderr
    assert sha256(killed.out / "phone" / "drill.mp3") == drill.clean_short
    assert temporary_files(killed.out) == []


@pytest.mark.engine
def test_a_track_replaced_before_its_lrc_is_not_taken_as_up_to_date(
    tmp_path: Path, drill: Drill
) -> None:
    # A build killed between replacing the track and writing its LRC (which carries
    # the fingerprint) leaves the new track beside the old LRC. Built again from the
    # old routine, the track must not be taken for up to date.
    out = tmp_path / "out"
    shutil.copytree(drill.previous, out)
    old_lrc = (out / "phone" / "drill.lrc").read_bytes()
    edited = tmp_path / "drill.yaml"
    edited.write_text(drill.short.read_text().replace("Nicely done.", "All done."))
    assert drill.cli.run("build", str(edited), "--out", str(out)).returncode == 0
    assert sha256(out / "phone" / "drill.mp3") != drill.clean_short
    (out / "phone" / "drill.lrc").write_bytes(old_lrc)  # as if killed before the LRC
    result = drill.cli.run("build", str(drill.short), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sha256(out / "phone" / "drill.mp3") == drill.clean_short


@pytest.mark.engine
def test_two_builds_into_one_folder_at_once_both_succeed(tmp_path: Path, drill: Drill) -> None:
    cli = make_cli(tmp_path)  # and one empty speech cache, filled by both at once
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(cli.run, "build", str(drill.short), "--out", "out") for _ in range(2)]
        results = [run.result() for run in runs]
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(Path("out") / "phone" / "drill.mp3")
    track = tmp_path / "out" / "phone" / "drill.mp3"
    assert sha256(track) == drill.clean_short  # whole, and the same as a lone build
    duration_ms = read_track_info(track).duration_ms
    assert abs(len(decode(track)) - samples(duration_ms)) <= samples(30)
    playlist = (track.parent / "playlist.m3u8").read_text(encoding="utf-8")
    assert playlist.count("drill.mp3") == 1
    assert temporary_files(tmp_path / "out") == [] and temporary_files(cli.cache) == []
    cache_entries_are_whole(cli.cache)


def test_a_track_another_build_replaced_gets_neither_this_build_s_page_nor_lrc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Build A writes its track; build B, of another version of the routine, renames its
    # own onto the same path before A writes the LRC. A's LRC (A's fingerprint) must not
    # end up beside B's track: it hashed the file at the path, so the next build of A's
    # version took B's track for up to date.
    routine = load_routine(Path(__file__).parent / "data" / "short.yaml")
    track = build.routine_track(routine, PROFILES["phone"], build.BuildOptions(out_dir=tmp_path))
    track.path.parent.mkdir(parents=True)
    track.path.write_bytes(b"A's track")
    written = files.Written.of(track.path)
    other = tmp_path / "B.mp3"
    other.write_bytes(b"B's track")
    os.replace(other, track.path)
    info = TrackInfo("t", "phone", "Fitness", "", "en", 1000, (), ())
    assert not build.publish(track, written, "<p>A</p>", info, "A")
    assert "replaced by another build" in capsys.readouterr().err
    assert not track.path.with_suffix(".lrc").exists()
    assert not track.path.with_suffix(".html").exists()
    assert not build.is_up_to_date(track, "A")
    # B's own publishing goes ahead, and its LRC names the bytes B wrote.
    assert build.publish(track, files.Written.of(track.path), "<p>B</p>", info, "B")
    assert build.is_up_to_date(track, "B") and not build.is_up_to_date(track, "A")


def test_builds_into_one_folder_take_turns_at_its_shared_files(tmp_path: Path) -> None:
    # The playlist and index are listed and written as one build saw the folder, and a
    # track's page and LRC beside that very track: a second build waits its turn.
    released = tmp_path / "released"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import pathlib, time\n"
            "from coachtrack.files import folder_lock\n"
            f"with folder_lock(pathlib.Path({str(tmp_path)!r})):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(1)\n"
            f"    pathlib.Path({str(released)!r}).touch()\n"
        )],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    build.write_folder_files(tmp_path)
    assert released.exists()  # it waited for the other to let go
    assert holder.wait(timeout=30) == 0
    assert (tmp_path / "playlist.m3u8").exists()


@pytest.mark.engine
def test_a_damaged_speech_cache_is_detected_and_remade(tmp_path: Path, drill: Drill) -> None:
    cli = make_cli(tmp_path)
    shutil.copytree(drill.cli.cache, cli.cache)  # every line the short drill says
    entries = cache_entries_are_whole(cli.cache)
    assert len(entries) > 8
    damaged: dict[str, Callable[[bytes], bytes]] = {
        "truncated": lambda data: data[: len(data) // 2],
        "cut by one byte": lambda data: data[:-1],
        "header only": lambda data: data[:48],
        "empty": lambda data: b"",
        "one bit flipped": lambda data: data[:-10] + bytes([data[-10] ^ 1]) + data[-9:],
        "garbage": lambda data: os.urandom(len(data)),
        "another line's clip": lambda data: entries[0].read_bytes(),
        "grown": lambda data: data + b"\0\0",
    }
    for entry, damage in zip(entries[1:], damaged.values(), strict=False):
        entry.write_bytes(damage(entry.read_bytes()))
    again = cli.run("build", str(drill.short), "--out", "again")
    assert again.returncode == 0, again.stderr
    assert sha256(tmp_path / "again/phone/drill.mp3") == drill.clean_short
    assert cache_entries_are_whole(cli.cache) == entries  # each damaged entry made again
    assert temporary_files(cli.cache) == []


@pytest.mark.engine
def test_an_unusable_cache_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    cli = make_cli(tmp_path, cache=tmp_path / "not-a-folder")
    result = cli.run("build", str(SHORT), "--out", "out")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot write the speech cache" in result.stderr
    assert "COACHTRACK_CACHE_DIR" in result.stderr
    assert not (tmp_path / "out" / "phone" / "short.mp3").exists()


@pytest.mark.engine
def test_a_hanging_speech_engine_times_out_with_a_clear_error(tmp_path: Path) -> None:
    cli = make_cli(tmp_path)
    started = time.monotonic()
    result = cli.run(
        "build", str(SHORT), "--out", "out", fault="hang", COACHTRACK_SPEECH_TIMEOUT="1"
    )
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert (
        first.startswith('coachtrack: speech engine failed on "') and "timed out after 1 s" in first
    )
    assert "espeak-ng hung" in result.stderr and "COACHTRACK_SPEECH_TIMEOUT" in result.stderr
    assert took < 6  # the timeout once, not once per pair of lines (~30 lines: 8 s or more)
    assert temporary_files(tmp_path / "out") == []
    assert not (tmp_path / "out" / "phone" / "short.mp3").exists()
    assert wait_until_gone(str(cli.cache)) == []  # the hung child was killed


@pytest.mark.engine
def test_a_speech_engine_that_writes_nothing_is_a_clear_error(tmp_path: Path) -> None:
    cli = make_cli(tmp_path)
    result = cli.run("build", str(SHORT), "--out", "out", fault="no-wav")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert 'speech engine wrote no usable WAV for "' in result.stderr
    assert not (tmp_path / "out" / "phone" / "short.mp3").exists()
    assert not list((tmp_path / "cache").rglob("*.pcm"))  # nothing bad was cached


@pytest.mark.parametrize("written", ["abc", "0", "-1", "inf"])
def test_a_bad_speech_timeout_setting_is_a_usage_error(tmp_path: Path, written: str) -> None:
    result = make_cli(tmp_path).run(
        "build", str(SHORT), "--out", "out", COACHTRACK_SPEECH_TIMEOUT=written
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"coachtrack: COACHTRACK_SPEECH_TIMEOUT={written!r}: "
        "give a number of seconds above 0, e.g. 60\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["build", str(SHORT), "--out", "out"], ["voices"]])
def test_missing_espeak_says_what_to_install(tmp_path: Path, command: list[str]) -> None:
    result = make_cli(tmp_path).run(*command, fault="no-espeak")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("coachtrack: libespeak-ng not found: ")
    assert "apt-get install espeak-ng" in result.stderr
    assert "pip install 'coachtrack[wheels]'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_checking_needs_no_speech_engine(tmp_path: Path) -> None:
    result = make_cli(tmp_path).run("check", str(SHORT), fault="no-espeak")
    assert result.returncode == 0, result.stderr


@pytest.mark.engine
def test_missing_ffmpeg_says_what_to_install(tmp_path: Path, drill: Drill) -> None:
    cli = make_cli(tmp_path, cache=drill.cli.cache)  # speech cached: ffmpeg is met quickly
    empty = tmp_path / "bin"
    empty.mkdir()
    result = cli.run(
        "build", str(drill.short), "--out", "out", "--format", "m4a",
        fault="no-ffmpeg-wheel", PATH=str(empty),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("coachtrack: ffmpeg not found: ")
    assert "apt-get install ffmpeg" in result.stderr
    assert "pip install 'coachtrack[wheels]'" in result.stderr
    assert not (tmp_path / "out" / "phone" / "drill.m4a").exists()
    assert temporary_files(tmp_path / "out") == []


# --- an --out that cannot be a folder


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """`folder` made unwritable, even for root where the system allows it."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a folder unwritable")
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a folder immutable here: {made.stderr!r}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def out_error(tmp_path: Path, out: str, status: int = 2) -> subprocess.CompletedProcess[str]:
    """`build --out OUT`, which must fail at once, before any speech: exit 2 for a file in
    the way (usage), 1 for a folder that cannot be written."""
    result = make_cli(tmp_path).run("build", str(SHORT), "--out", out)
    assert result.returncode == status, result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result


def test_out_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "track.mp3").write_bytes(b"not a folder")
    result = out_error(tmp_path, "track.mp3")
    assert result.stderr == "coachtrack: --out: track.mp3 is a file, not a folder\n"
    assert (tmp_path / "track.mp3").read_bytes() == b"not a folder"


def test_out_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    result = out_error(tmp_path, "file/out")
    assert result.stderr == "coachtrack: --out: file is a file, not a folder\n"


def test_out_whose_profile_folder_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "phone").write_bytes(b"")
    result = out_error(tmp_path, "out")
    assert result.stderr == "coachtrack: --out: out/phone is a file, not a folder\n"
    assert not (tmp_path / "cache").exists()  # refused before any speech


def test_unwritable_out_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with unwritable(tmp_path / "out"):
        result = out_error(tmp_path, "out", status=1)
    assert result.stderr.startswith("coachtrack: --out: cannot write in out")
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "cache").exists()  # refused before any speech
