"""The command line as a user meets it, in fresh processes: bad input, usage, output formats.

Every kind of malformed routine is refused by `check` and by `build` alike: exit 2,
one `PATH[:LINE:COL]: key.path: message` line per problem, no traceback, nothing
written, at once. Refusing needs no speech engine, so the whole table takes seconds:
all the files go through `check` and `build` in two fresh processes, and each file
alone through the CLI's entry point in this process.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer

from coachtrack import cli
from coachtrack.errors import Terminated

from .e2e import decode, ffprobe_chapters, run_cli, samples

ROOT = Path(__file__).parent.parent
SHORT = ROOT / "tests" / "data" / "short.yaml"

# A valid routine up to its only step's actions, which go on line 5 at column 9.
HEAD = "title: T\nsteps:\n  - title: S\n    do:\n"
ONE_STEP = "steps:\n  - title: S\n    do: [{say: hi}]\n"


def actions(text: str) -> str:
    """A routine whose only step's `do` list is `text`."""
    return HEAD + "".join(f"      {line}\n" for line in text.splitlines())


def top(extra: str) -> str:
    """A routine with the line `extra` after its title."""
    return f"title: T\n{extra}\n{ONE_STEP}"


def step(extra: str) -> str:
    """A routine whose only step has the line `extra` before its `do`."""
    return HEAD.replace("    do:\n", f"    {extra}\n    do:\n") + "      - say: hi\n"


BILLION_LAUGHS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
)
PWNED = "pwned-by-a-routine"  # a tag that ran code would create this file

# Each kind of bad routine: the file, and a pattern its first problem line matches
# after the path (a whole-file problem has no line and column).
BAD: dict[str, tuple[str | bytes, str]] = {
    "yaml-syntax": ("title: x\nsteps: [\n", r"^:3:1: YAML syntax error: "),
    "yaml-indent": ("title: x\n  steps: y\n", r"^:2:8: YAML syntax error: mapping values"),
    "tabs": ("title: x\nsteps:\n\t- title: y\n", r"^:3:1: .*indent with spaces, not tabs$"),
    "empty": ("", r"^: the file is empty$"),
    "only-comments": ("# nothing here yet\n", r"^: the file is empty$"),
    "top-list": ("- a\n- b\n", r"^:1:1: expected a routine \(a mapping with title and steps\)"),
    "top-text": ("Stretch the calf.\n", r"^:1:1: expected a routine"),
    "steps-missing": ("title: T\n", r"^:1:1: steps: missing required key 'steps'$"),
    "steps-empty": ("title: T\nsteps: []\n", r"^:2:1: steps: the list is empty"),
    "title-missing": (ONE_STEP, r"^:1:1: title: missing required key 'title'$"),
    "unknown-key": (top("colour: red"), r"^:2:1: colour: unknown key 'colour'$"),
    "misspelt-key": (
        actions("- hold: 30s\n  breath: calm"),
        r"^:6:9: steps\[0\]\.do\[0\]\.breath: unknown key 'breath'; did you mean 'breathe'\?$",
    ),
    "wrong-type-title": ("title: 2024\n" + ONE_STEP, r"^:1:1: title: expected text, got a number"),
    "wrong-type-hold": (actions("- hold: [30s]"), r"^:5:9: steps\[0\]\.do\[0\]\.hold: expected"),
    "wrong-type-steps": ("title: T\nsteps: stretch\n", r"^:2:1: steps: expected a list of steps"),
    "duration-unparseable": (actions("- hold: abc"), r'^:5:9: steps\[0\]\.do\[0\]\.hold: "abc"'),
    "duration-zero": (actions("- hold: 0s"), r'hold: "0s" must be longer than zero$'),
    "duration-negative": (actions("- pause: -5s"), r'pause: "-5s" must be longer than zero$'),
    "duration-too-short": (actions("- hold: 0.5s"), r"hold: .* a hold lasts at least 1 s$"),
    "duration-too-long": (actions("- hold: 31m"), r"hold: .* a hold lasts at most 30 min$"),
    "range-reversed": (actions("- hold: 2m..1m"), r'hold: "2m..1m" must go from shorter'),
    "track-over-4h": (
        actions("- repeat: 9\n  do: [{hold: 30m}]"),
        r"^:2:1: steps: the routine would last about 4h 30m, over the 4 hour limit$",
    ),
    "track-over-4h-counting-aloud": (
        actions("- repeat: 9000\n  do: [{hold: 1s}]"),
        r"^:2:1: steps: with the counting aloud.* over the 4 hour limit$",
    ),
    "id-path-separator": (top("id: legs/hamstring"), r"^:2:1: id: 'legs/hamstring' is not a valid"),
    "id-dotdot": (top("id: ../escape"), r"^:2:1: id: '\.\./escape' is not a valid id"),
    "id-uppercase": (top("id: Hamstring"), r"^:2:1: id: 'Hamstring' is not a valid id"),
    "breathe-unknown": (
        actions("- hold: 30s\n  breathe: deeply"),
        r"breathe: unknown breathe 'deeply': use intensify or calm$",
    ),
    "text-empty": (actions('- say: ""'), r"^:5:9: steps\[0\]\.do\[0\]\.say: the text is empty$"),
    "text-markup-only": (
        actions("- say: '<break time=\"3s\"/>'"),
        r"say: nothing to speak: markup such as <break/>",
    ),
    "text-punctuation-only": (actions("- say: '...'"), r"say: nothing to speak: the text has no"),
    "repeat-zero": (actions("- repeat: 0\n  do: [{say: x}]"), r"repeat: must be a whole number"),
    "repeat-fraction": (actions("- repeat: 2.5\n  do: [{say: x}]"), r"got 2\.5$"),
    "repeat-words": (actions("- repeat: ten\n  do: [{say: x}]"), r"expected a whole number"),
    "sides-empty": (step("sides: []"), r"^:4:5: steps\[0\]\.sides: the list is empty$"),
    "duplicate-key": ("title: T\ntitle: U\n" + ONE_STEP, r"^:2:1: title: duplicate key 'title'"),
    "action-two-kinds": (
        actions("- hold: 5s\n  pause: 3s"),
        r"^:5:9: steps\[0\]\.do\[0\]: an action is exactly one of .*not hold and pause$",
    ),
    "action-no-kind": (actions("- breathe: calm"), r"^:5:9: .*an action needs one of say"),
    "language-unknown": (top("language: fr"), r"^:2:1: language: unknown language 'fr'"),
    "yaml-tag-python": (
        f'title: !!python/object/apply:os.system ["touch {PWNED}"]\n' + ONE_STEP,
        r"^:1:8: title: the YAML tag '!!python/object/apply:os.system' is not allowed$",
    ),
    "yaml-tag-local": ("title: !shout T\n" + ONE_STEP, r"^:1:8: title: the YAML tag '!shout'"),
    "alias-bomb": (BILLION_LAUGHS, r"the file has more than 10,000 values"),
    "alias-recursive": ("title: T\nsteps: &s [*s]\n", r"an alias refers to the node"),
    "deep-nesting": ("[" * 20_000 + "]" * 20_000, r"^:1:51: the file is nested more than 50"),
    "invalid-utf8": (b"title: T\nsafety: caf\xe9\n", r"^: the file is not UTF-8 text: byte 0xE9"),
    "utf16": ("title: T\n".encode("utf-16"), r"^: the file is UTF-16 text, not UTF-8; save"),
    "utf16-no-bom": ("title: T\n".encode("utf-16-le"), r"^: the file is UTF-16 text, not UTF-8"),
    "utf32": ("title: T\n".encode("utf-32"), r"^: the file is UTF-32 text, not UTF-8"),
    "nul-character": ("title: a\x00b\n" + ONE_STEP, r"^:1:9: title: the character U\+0000"),
    "over-size-limit": (
        b"\xff[" * 600_000,  # neither UTF-8 nor YAML: only the size may be reported
        r"^: the file is 1,200,000 bytes; a routine file is at most 1 MB$",
    ),
    "crlf-and-bom-keep-line-numbers": (
        b"\xef\xbb\xbf" + actions("- hold: 2m..1m").replace("\n", "\r\n").encode(),
        r'^:5:9: steps\[0\]\.do\[0\]\.hold: "2m..1m" must go from shorter',
    ),
    "placeholder-unknown": (actions('- say: "Lift {foot}."'), r"unknown placeholder '\{foot\}'"),
}
PROBLEM_LINE = r"(:\d+:\d+)?: \S"


@dataclass(frozen=True, slots=True)
class Refusals:
    """`check` and `build` run on all the bad files at once, each in a fresh process."""

    folder: Path
    check: subprocess.CompletedProcess[str]
    build: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Refusals:
    folder = tmp_path_factory.mktemp("bad")
    (folder / "routines").mkdir()
    for kind, (content, _) in BAD.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / "routines" / f"{kind}.yaml").write_bytes(data)
    cache = folder / "cache"
    with ThreadPoolExecutor(max_workers=2) as pool:
        check = pool.submit(run_cli, "check", "routines", cwd=folder, cache=cache)
        build = pool.submit(run_cli, "build", "routines", "--out", "out", cwd=folder, cache=cache)
        return Refusals(folder, check.result(), build.result())


def assert_refused(result: subprocess.CompletedProcess[str], paths: list[str]) -> list[str]:
    """Exit 2, stdout empty, every stderr line a located problem in one of `paths`."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines
    pattern = re.compile(rf"^({'|'.join(re.escape(p) for p in paths)}){PROBLEM_LINE}")
    for line in lines:
        assert pattern.match(line), line
    return lines


def run_in_process(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    """The CLI's entry point called here, as `coachtrack ARGS` would call it, and its time."""
    started = time.perf_counter()
    try:
        cli.main(args)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    seconds = time.perf_counter() - started
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err), seconds


@pytest.mark.parametrize("kind", BAD)
def test_bad_routine_is_refused_with_located_problems(
    refusals: Refusals, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = refusals.folder / "routines" / f"{kind}.yaml"
    name = f"routines/{kind}.yaml"
    every = [f"routines/{other}.yaml" for other in BAD]
    # In fresh processes, among all the other files: exactly the problems of this file alone.
    from_check = [line for line in assert_refused(refusals.check, every) if line.startswith(name)]
    from_build = [line for line in assert_refused(refusals.build, every) if line.startswith(name)]
    assert from_check == from_build
    assert re.search(BAD[kind][1], from_check[0].removeprefix(name)), from_check[0]
    assert not (refusals.folder / "out").exists()  # nothing written
    assert not (refusals.folder / "cache").exists()  # the speech engine never started
    assert not (refusals.folder / PWNED).exists()  # no code ran from a routine
    # Alone, through the entry point: exit 2, the same lines, at once.
    out = refusals.folder / f"out-{kind}"
    for args in (["check", str(path)], ["build", str(path), "--out", str(out)]):
        result, seconds = run_in_process(args, capsys)
        alone = assert_refused(result, [str(path)])
        assert [line.replace(str(path), name, 1) for line in alone] == from_check
        assert seconds < 5, f"{args[0]} took {seconds:.1f} s"  # ~10 ms; loose for busy CI
    assert not out.exists()


def test_every_bad_file_reported_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "routines"
    folder.mkdir()
    chosen = ["tabs", "duration-zero", "id-dotdot", "invalid-utf8", "alias-bomb"]
    for kind in chosen:
        content = BAD[kind][0]
        (folder / f"{kind}.yaml").write_bytes(
            content.encode("utf-8") if isinstance(content, str) else content
        )
    (folder / "good.yaml").write_bytes(SHORT.read_bytes())
    two_problems = "titel: T\nlanguage: fr\n" + ONE_STEP
    (folder / "two.yaml").write_text(two_problems, encoding="utf-8")
    for command in (["check", "routines"], ["build", "routines", "--out", "out"]):
        result = run_cli(*command, cache=tmp_path / "cache", cwd=tmp_path)
        paths = [f"routines/{name}" for name in sorted(os.listdir(folder))]
        lines = assert_refused(result, paths)
        named = {line.split(":", 1)[0] for line in lines}
        assert named == {f"routines/{kind}.yaml" for kind in [*chosen, "two"]}
        assert [line for line in lines if line.startswith("routines/two.yaml")] == [
            "routines/two.yaml:1:1: titel: unknown key 'titel'; did you mean 'title'?",
            "routines/two.yaml:2:1: language: unknown language 'fr' (known: de, en)",
        ]
    assert not (tmp_path / "out").exists()  # the good routine is not built either
    assert not (tmp_path / "cache").exists()


def test_two_routines_with_one_id_are_refused(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(top("id: same"), encoding="utf-8")
    result = run_cli(
        "build", "a.yaml", "b.yaml", "--out", "out", cache=tmp_path / "c", cwd=tmp_path
    )
    assert assert_refused(result, ["a.yaml", "b.yaml"]) == [
        "b.yaml:2:1: id: the routine id 'same' is also used by a.yaml"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "short.yaml", "--bogus"], "No such option: --bogus"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["plan"], "Missing argument"),
        (["build", "short.yaml", "--jobs", "0"], "coachtrack: --jobs: expected 1 or more, got 0"),
        (["build", "short.yaml", "--out", "out", "-p", "nightly"], "unknown profile 'nightly'"),
        (["plan", "short.yaml", "--profile", "nightly"], "unknown profile 'nightly'"),
        (["plan", "short.yaml", "-p", "phone", "-p", "gym"], "give one profile, not 2"),
        (
            ["mix", "short.yaml", "--out", "out/s.mp3", "-p", "gym", "-p", "bedside"],
            "give one profile, not 2",
        ),
        (["build", "short.yaml", "--out", "out", "--format", "ogg"], "unknown format 'ogg'"),
        (["check", "missing.yaml"], "missing.yaml: no such file or folder"),
        (["build", "empty-folder", "--out", "out"], "empty-folder: no routine files"),
        (["plan", "two"], "\ntwo: holds 2 routines; name one file\n"),
        (
            ["build", "short.yaml", "--out", "out", "--music", "empty-folder"],
            "\nempty-folder: --music: is a folder; name a music file\n",
        ),
        (
            ["build", "short.yaml", "--out", "out", "--music", "/dev/null"],
            "\n/dev/null: --music: is not a regular file; name a music file\n",
        ),
        (["mix", "short.yaml", "--out", "out/.mp3"], "\nout/.mp3: --out: needs a name before its"),
        # An unset shell variable: it wrote into the current folder.
        (["build", "short.yaml", "--out="], "\ncoachtrack: --out: is empty; name a path\n"),
        (["mix", "short.yaml", "--out", ""], "\ncoachtrack: --out: is empty; name a path\n"),
        (["plan", "short.yaml", "-p", "nightly"], "\ncoachtrack: --profile: unknown profile"),
        (
            ["mix", "short.yaml", "--out", "out/gym/s.mp3", "-p", "gym", "--music", "blip.wav"],
            "\nblip.wav: --music: the music file holds no sound (or less than a second of it)\n",
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_usage_errors_exit_2_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "short.yaml").write_bytes(SHORT.read_bytes())
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "two").mkdir()
    sf.write(tmp_path / "blip.wav", np.full(6615, 0.1, np.float32), 22050)  # 0.3 s of sound
    for name in ("a", "b"):
        routine = SHORT.read_text(encoding="utf-8").replace("id: ", f"id: {name}")
        (tmp_path / "two" / f"{name}.yaml").write_text(routine, encoding="utf-8")
    result = run_cli(*args, cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in "\n" + result.stderr  # "\n...": the message starts its line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "c").exists()


def test_the_default_routines_folder_is_named_as_the_default_when_it_fails(
    tmp_path: Path,
) -> None:
    # Run outside the project, `routines: no such file or folder` did not say that
    # `routines` was only the default, taken because no routine was given.
    for command in ("check", "build", "list"):
        result = run_cli(command, cache=tmp_path / "c", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            "routines: no such file or folder (the default when no routine is given; "
            "pass a routine file or folder)"
        ]
        assert list(tmp_path.iterdir()) == []  # nothing written, nothing spoken
    # Named, it is a path like any other.
    result = run_cli("check", "routines", cache=tmp_path / "c", cwd=tmp_path)
    assert result.stderr.splitlines() == ["routines: no such file or folder"]


def test_a_format_is_known_in_any_case() -> None:
    assert [cli._format(name) for name in ("MP3", "m4a", "Wav")] == ["mp3", "m4a", "wav"]


def test_bad_options_and_a_bad_routine_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("title: T\nsteps:\n  - title: A\n", encoding="utf-8")
    args = ["bad.yaml", "--format", "ogg", "-p", "nightly", "-p", "gym", "-p", "daily"]
    args += ["--jobs", "-1"]  # Click said this one alone, in its own words
    result = run_cli("build", *args, "--out", "out", cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "coachtrack: --format: unknown format 'ogg'; choose mp3, m4a or wav",
        "coachtrack: --profile: unknown profile 'nightly'; choose one of: phone, bedside, gym",
        "coachtrack: --profile: unknown profile 'daily'; choose one of: phone, bedside, gym",
        "coachtrack: --jobs: expected 1 or more, got -1",
        "bad.yaml:3:5: steps[0]: missing required key 'do'",
    ]
    assert not (tmp_path / "out").exists()
    # A bed where the profile has none, and a voice the engine lacks: said together too.
    args = ["bad.yaml", "-p", "bedside", "--music", "song.mp3", "--voice", "vulcan"]
    result = run_cli("build", *args, "--out", "out", cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == [
        "bad.yaml", "coachtrack", "song.mp3", "coachtrack"
    ]  # fmt: skip
    assert "--music" in result.stderr and "'vulcan'" in result.stderr
    for command, extra in (("plan", []), ("mix", ["--out", "out/s.mp3"])):
        result = run_cli(command, "bad.yaml", "-p", "nightly", *extra, cache=tmp_path / "c",
                         cwd=tmp_path)  # fmt: skip
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 2, result.stderr


def test_a_session_s_problems_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(top("id: a"), encoding="utf-8")
    (tmp_path / "de.yaml").write_text(top("language: de"), encoding="utf-8")
    args = ["mix", "a.yaml", "de.yaml", "--out", "s.ogg", "--music", "missing.mp3"]
    result = run_cli(*args, cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert sorted(result.stderr.splitlines()) == [
        "de.yaml:2:1: language: a session speaks one language: 'de' here, 'en' in the others",
        "missing.mp3: --music: no such music file",
        "s.ogg: --out: must end in .mp3, .m4a or .wav",
    ]
    # The odd one out may speak the default, with no line to point at.
    result = run_cli("mix", "de.yaml", "a.yaml", "de.yaml", "--out", "s.mp3",
                     cache=tmp_path / "c", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "a.yaml: language: a session speaks one language: 'en' here, 'de' in the others "
        "(the default, as no language is given)"
    ]
    # A routine named twice plays twice; its problems are said once.
    (tmp_path / "bad.yaml").write_text(actions("- hold: 99x"), encoding="utf-8")
    result = run_cli("mix", "bad.yaml", "bad.yaml", "--out", "s.mp3", cache=tmp_path / "c",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr


def test_music_that_does_not_decode_is_refused_before_anything_is_spoken(tmp_path: Path) -> None:
    # It was decoded only after planning, once all the speech had been synthesized; and a
    # problem reported with it (an unknown format) was said alone, the music's not at all.
    (tmp_path / "short.yaml").write_bytes(SHORT.read_bytes())
    (tmp_path / "text.mp3").write_bytes(b"not music at all\n" * 100)  # a text file, renamed
    (tmp_path / "empty.mp3").write_bytes(b"")
    reasons = {
        "text.mp3": "cannot decode this music file: ",
        "empty.mp3": "the music file is empty",
    }
    for song, reason in reasons.items():
        runs = (["build", "short.yaml", "-p", "gym", "--out", "out"],
                ["build", "short.yaml", "-p", "gym", "--format", "ogg", "--out", "out"],
                ["mix", "short.yaml", "-p", "gym", "--out", "out/s.ogg"])  # fmt: skip
        for args in runs:
            result = run_cli(*args, "--music", song, cache=tmp_path / "c", cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            lines = result.stderr.splitlines()
            others = 1 if "ogg" in " ".join(args) else 0  # said with the music's problem
            assert len(lines) == 1 + others, result.stderr
            assert sum("ogg" in line for line in lines) == others, result.stderr
            said = f"{song}: --music: {reason}"
            assert sum(line.startswith(said) for line in lines) == 1, result.stderr
            assert not (tmp_path / "out").exists()
            assert not (tmp_path / "c").exists()  # nothing was spoken


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mix", "short.yaml", "--out", "song.mp3", "--music", "song.mp3"],
         "song.mp3: --music: is where the track would be written; choose another --out"),
        (["plan", "short.yaml", "--svg", "short.yaml"], "short.yaml: --svg: is the routine itself"),
        (["plan", "short.yaml", "--json", "--svg", "."],
         ".: --svg: is a folder; name the picture's file"),
        (["mix", "short.yaml", "--out", "out/index.mp3"],
         "out/index.mp3: --out: a track named 'index' would have its page overwritten by the "
         "folder's index.html; choose another name"),
        (["build", "index.yaml", "--out", "out"],
         "index.yaml: the id made from the file name, 'index', would give the track's page "
         "the name of the folder's index page, index.html; add an 'id'"),
        (["build", "short.yaml", "--out", "blocked"],
         "blocked/phone/short.lrc: a folder is in the way of this output; move it or choose "
         "another --out"),
        (["build", "short.yaml", "--out", "listed"],
         "listed/phone/playlist.m3u8: a folder is in the way of this output; move it or "
         "choose another --out"),
        (["mix", "s.html", "--out", "s.mp3"],
         "s.html: is a routine this run reads, and coachtrack would write an output over it; "
         "choose another --out"),
        (["build", "lists/phone/playlist.m3u8", "--out", "lists"],
         "lists/phone/playlist.m3u8: is a routine this run reads, and coachtrack would write "
         "an output over it; choose another --out"),
    ],
    ids=["music-is-out", "svg-is-routine", "svg-is-folder", "mix-index", "build-index",
         "folder-in-the-way", "playlist-in-the-way", "page-is-routine", "playlist-is-routine"],
)  # fmt: skip
def test_an_output_that_would_destroy_an_input_or_cannot_be_written_is_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "short.yaml").write_bytes(SHORT.read_bytes())
    (tmp_path / "index.yaml").write_text(top("level: easy"), encoding="utf-8")
    (tmp_path / "song.mp3").write_bytes(a_second_of_music())  # music the decoder reads
    (tmp_path / "blocked" / "phone" / "short.lrc").mkdir(parents=True)
    (tmp_path / "listed" / "phone" / "playlist.m3u8").mkdir(parents=True)
    (tmp_path / "s.html").write_bytes(SHORT.read_bytes())  # a routine, oddly named
    (tmp_path / "lists" / "phone").mkdir(parents=True)
    (tmp_path / "lists" / "phone" / "playlist.m3u8").write_bytes(SHORT.read_bytes())
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = run_cli(*args, cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [message]
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not (tmp_path / "out").exists()
    assert [p.name for p in (tmp_path / "blocked" / "phone").iterdir()] == ["short.lrc"]
    assert (tmp_path / "lists" / "phone" / "playlist.m3u8").read_bytes() == SHORT.read_bytes()


def a_second_of_music() -> bytes:
    """A WAV file's bytes: a second of a tone, as ffmpeg decodes whatever the file's name."""
    t = np.arange(22050) / 22050
    buffer = io.BytesIO()
    sf.write(buffer, 0.5 * np.sin(2 * np.pi * 440 * t), 22050, format="WAV")
    return buffer.getvalue()


def test_an_svg_under_a_file_is_refused_before_anything_is_spoken(tmp_path: Path) -> None:
    (tmp_path / "short.yaml").write_bytes(SHORT.read_bytes())
    (tmp_path / "m.mp3").write_bytes(b"a file")
    result = run_cli("plan", "short.yaml", "--svg", "m.mp3/x.svg", cache=tmp_path / "c",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == ["coachtrack: --svg: m.mp3 is a file, not a folder"]
    assert not (tmp_path / "c").exists()  # nothing was spoken


def test_an_unknown_encoder_setting_is_refused_before_anything_is_spoken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "short.yaml").write_bytes(SHORT.read_bytes())
    monkeypatch.setenv("COACHTRACK_ENCODER", "LAME")
    for args in (["build", "--format", "wav", "--out", "out"], ["mix", "--out", "out/s.mp3"]):
        result = run_cli(args[0], "short.yaml", *args[1:], cache=tmp_path / "c", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            "coachtrack: COACHTRACK_ENCODER='LAME': expected 'lame' or 'ffmpeg'"
        ]
        assert not (tmp_path / "out").exists() and not (tmp_path / "c").exists()


@pytest.mark.engine
@pytest.mark.parametrize("command", ["build", "plan", "mix"])
def test_an_unknown_voice_is_a_usage_error_said_once(tmp_path: Path, command: str) -> None:
    (tmp_path / "short.yaml").write_bytes(SHORT.read_bytes())
    extra = ["--out", "out/s.mp3"] if command == "mix" else ["--out", "out"] * (command == "build")
    result = run_cli(command, "short.yaml", *extra, "--voice", "vulcan", cache=tmp_path / "c",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "coachtrack: --voice: the speech engine has no voice 'vulcan'; "
        "`coachtrack voices` lists those it has"
    ]
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "c").rglob("*.pcm"))  # nothing was spoken


@pytest.mark.engine
def test_a_voice_named_by_its_language_speaks_and_a_foreign_one_is_noted(tmp_path: Path) -> None:
    # espeak-ng refuses "en-gb" by name (its voice is gmw/en): every line failed.
    (tmp_path / "short.yaml").write_bytes(SHORT.read_bytes())
    args = ["short.yaml", "--format", "wav", "--out", "out"]
    result = run_cli("build", *args, "--voice", "en-gb", cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # A German voice reads an English routine if asked to, and says what it will sound like.
    result = run_cli("build", *args, "--voice", "gmw/de", cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "coachtrack: note: --voice 'gmw/de' speaks de, not en: short will sound foreign in it"
    ]


@pytest.mark.engine
def test_a_build_refused_after_speaking_leaves_no_folder_it_made(
    tmp_path: Path, warm: Path
) -> None:
    # Music silent throughout passes the quick check (its first second decodes) and is
    # refused by the whole decode, once the speech is made: the output folders that run
    # made were left behind, empty. A folder that was there before stays.
    (tmp_path / "short.yaml").write_bytes(SHORT.read_bytes())
    sf.write(tmp_path / "hush.wav", np.zeros(3 * 22050, np.float32), 22050)
    (tmp_path / "kept").mkdir()
    for command in (
        ["build", "short.yaml", "--out", "out/new", "-p", "gym"],
        ["build", "short.yaml", "--out", "kept", "-p", "gym", "-p", "phone"],
        ["mix", "short.yaml", "--out", "out/gym/s.mp3", "-p", "gym"],
    ):
        result = run_cli(*command, "--music", "hush.wav", cache=warm, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            "hush.wav: --music: the music file holds no sound (or less than a second of it)"
        ]
    assert not (tmp_path / "out").exists()
    assert list((tmp_path / "kept").iterdir()) == []


# --- happy paths and their output formats


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A speech cache holding every line of tests/data/short.yaml in every profile."""
    cache = tmp_path_factory.mktemp("warm-cache")
    result = run_cli("list", str(SHORT), cache=cache)
    assert result.returncode == 0, result.stderr
    return cache


def test_check_prints_one_ok_line_per_routine(tmp_path: Path) -> None:
    result = run_cli("check", str(ROOT / "routines"), str(SHORT), cache=tmp_path / "c")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(list((ROOT / "routines").glob("*.yaml"))) + 1
    for line in lines:
        assert re.fullmatch(r"ok  \S+\.yaml  \([a-z0-9-]+, (1 step|\d+ steps)\)", line), line
    assert f"ok  {SHORT}  (short, 2 steps)" in lines
    assert result.stderr == ""
    assert not (tmp_path / "c").exists()  # checking needs no speech


@pytest.mark.engine
def test_list_shows_length_per_profile(warm: Path) -> None:
    result = run_cli("list", str(SHORT), cache=warm)
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["id", "title", "steps", "phone", "bedside", "gym"]  # DESIGN.md's
    assert re.fullmatch(r"short  Short test routine +2 +\d\d:\d\d +\d\d:\d\d +\d\d:\d\d", row)
    assert header.index("steps") + 5 == row.index("2") + 1  # aligned under its header


def test_list_shows_a_length_over_an_hour_in_hours(tmp_path: Path, warm: Path) -> None:
    long = tmp_path / "long.yaml"
    long.write_text(
        "title: Long\nsteps:\n  - title: Hold\n    do: [{repeat: 4, do: [{hold: 24m}]}]"
    )
    result = run_cli("list", str(long), cache=warm)
    assert result.returncode == 0, result.stderr
    # 1:36:xx, not 96:xx, in every profile
    assert re.fullmatch(
        r"long  Long  +1 +1:3\d:\d\d +1:3\d:\d\d +1:3\d:\d\d", result.stdout.splitlines()[1]
    )


@pytest.mark.engine
def test_voices_lists_id_languages_and_name(tmp_path: Path) -> None:
    result = run_cli("voices", "--language", "de", cache=tmp_path / "c")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["gmw/de", "de", "German"] in rows
    assert all(row[1].split(",")[0].split("-")[0] == "de" for row in rows)
    # A tag with a region, any case or an underscore; one nothing speaks is an error.
    for query in ("en-us", "EN-US", "en_US"):
        result = run_cli("voices", "--language", query, cache=tmp_path / "c")
        assert result.returncode == 0 and "gmw/en-us " in result.stdout, (query, result.stderr)
        assert all(" en-us" in line for line in result.stdout.splitlines())
    result = run_cli("voices", "--language", "xx", cache=tmp_path / "c")
    assert result.returncode == 2 and not result.stdout
    assert result.stderr.startswith("coachtrack: --language: no voice for 'xx'")


@pytest.mark.engine
def test_a_reminder_its_hold_has_no_room_for_is_noted(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(actions("- hold: 2s\n  remind: Relax."), encoding="utf-8")
    for command, extra in (("plan", []), ("build", ["--out", "out"])):
        result = run_cli(command, "r.yaml", "-p", "gym", *extra, cache=tmp_path / "c",
                         cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [
            'coachtrack: note: r.yaml: the reminder "Relax." does not fit in its hold in the '
            "gym profile (a hold's first 3 s and its countdown stay free), so it is not said"
        ]
    # Bedside counts nothing down: its note does not say a countdown is in the way.
    result = run_cli("plan", "r.yaml", "-p", "bedside", cache=tmp_path / "c", cwd=tmp_path)
    assert "(a hold's first 3 s stay free), so it is not said" in result.stderr


@pytest.mark.engine
def test_a_symbol_the_engine_has_no_word_for_is_refused_where_it_is_written(
    tmp_path: Path,
) -> None:
    text = 'title: T\nintro: ["\u266a"]\nsteps:\n  - title: S\n    do:\n      - say: "\u266a"\n'
    (tmp_path / "r.yaml").write_text(text + '      - say: "Thumbs \U0001f44d"\n', "utf-8")
    result = run_cli("build", "r.yaml", "--out", "out", cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    message = 'the speech engine says nothing for "\u266a"; write it in words'
    assert result.stderr.splitlines() == [
        f"r.yaml:2:9: intro[0]: {message}",
        f"r.yaml:6:9: steps[0].do[0].say: {message}",
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.engine
def test_a_silent_symbol_is_located_in_lists_reminders_and_titles(tmp_path: Path) -> None:
    # Bedside says a step's title alone ("\u266a."); the list item and the reminder are
    # named, not the action or the hold they belong to.
    text = (
        'title: T\nsteps:\n  - title: "\u266a"\n    sides: [right]\n    do:\n'
        '      - say: ["Fine.", "\u266a"]\n      - hold: 20s\n        remind: "\u266a"\n'
    )
    (tmp_path / "r.yaml").write_text(text, "utf-8")
    result = run_cli("plan", "r.yaml", "-p", "bedside", cache=tmp_path / "c", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    message = 'the speech engine says nothing for "\u266a"; write it in words'
    assert result.stderr.splitlines() == [
        f"r.yaml:3:5: steps[0].title: {message}",
        f"r.yaml:6:24: steps[0].do[0].say[1]: {message}",
        f"r.yaml:8:9: steps[0].do[1].remind: {message}",
    ]
    assert not result.stdout
    # The routine's title, said alone as the phone track's welcome.
    (tmp_path / "t.yaml").write_text(text.replace("title: T", 'title: "\u266a"'), "utf-8")
    result = run_cli("plan", "t.yaml", cache=tmp_path / "c", cwd=tmp_path)
    assert (
        result.returncode == 2 and result.stderr.splitlines()[0] == f"t.yaml:1:1: title: {message}"
    )


@pytest.mark.engine
def test_plan_text_and_json_show_the_same_timeline(warm: Path) -> None:
    profile = "bedside"
    text = run_cli("plan", str(SHORT), "--profile", profile, cache=warm)
    sheet_run = run_cli("plan", str(SHORT), "--profile", profile, "--json", cache=warm)
    assert text.returncode == sheet_run.returncode == 0, text.stderr + sheet_run.stderr
    sheet = json.loads(sheet_run.stdout)
    assert sheet["routine"] == "short" and sheet["profile"] == profile
    assert sheet["sample_rate"] == 22050 and isinstance(sheet["duration_ms"], int)
    kinds = {"speech", "cue", "hold", "pause", "chime", "countdown", "music"}
    assert {event["kind"] for event in sheet["events"]} <= kinds
    starts = [event["start_ms"] for event in sheet["events"]]
    assert starts == sorted(starts)

    rows = text.stdout.splitlines()  # a line per event, as DESIGN.md has it
    row = re.compile(r"(\d{2,}):(\d{2})\.(\d{3})  (\w+) +(.*)")
    parsed = [row.fullmatch(line) for line in rows]
    assert all(parsed), [line for line, m in zip(rows, parsed, strict=True) if not m]
    assert [m.group(4) for m in parsed if m] == [event["kind"] for event in sheet["events"]]
    assert [_ms(m) for m in parsed if m] == starts
    spoken = [e.get("text") for e in sheet["events"] if e["kind"] in ("speech", "cue")]
    texts = [m.group(5) for m in parsed if m and m.group(4) in ("speech", "cue")]
    assert texts == spoken


def _ms(match: re.Match[str]) -> int:
    minutes, seconds, millis = (int(match.group(i)) for i in (1, 2, 3))
    return (minutes * 60 + seconds) * 1000 + millis


def _commands() -> list[str]:
    """Every command the CLI offers, as Typer registered them."""
    group = typer.main.get_command(cli.app)
    return sorted(getattr(group, "commands", {}))


def _help(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What `coachtrack ARGS --help` prints, through the real entry point."""
    try:
        cli.main([*args, "--help"])
    except SystemExit as done:
        assert done.code in (0, None)
    return capsys.readouterr().out


def test_every_command_is_documented_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _commands()
    assert {"check", "plan", "build", "list", "voices"} <= set(commands)
    overview = _help([], capsys)
    for name in commands:
        assert name in overview
        page = " ".join(_help([name], capsys).split())
        assert re.search(rf"Example: coachtrack {name}\b", page), f"{name} --help has no example"


# --- odd but valid input builds


ODD = (
    "\ufefftitle: Dehnübung für die Wade 🧘 — Растяжка 伸展\r\n"
    "id: odd\r\n"
    "equipment: [Handtuch, полотенце]\r\n"
    "intro: Café au lait, naïve señor.\r\n"
    "steps:\r\n"
    "  - title: Wade ✨ icke\r\n"
    "    sides: [rechts, левый]\r\n"
    "    do:\r\n"
    "      - say: Lean on the wall with your {side} foot back. 😀\r\n"
    "      - say:\r\n"
    '          - Relax. <break time="3s"/> Breathe.\r\n'
    "          - Relax. Breathe.\r\n"
    "          - Say [[h@l'oU]] now.\r\n"
    "          - Say now.\r\n"
    '          - <speak><prosody rate="x-slow">Slowly</prosody></speak> up.\r\n'
    "          - Slowly up.\r\n"
    "          - Растяжка. 伸展。\r\n"
    "      - hold: 4s\r\n"
    "outro: Готово! 🎉\r\n"
)


@pytest.mark.engine
def test_odd_but_valid_routine_builds_and_markup_is_not_obeyed(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_bytes(ODD.encode("utf-8"))
    cache, out = tmp_path / "cache", tmp_path / "out"
    checked = run_cli("check", str(path), cache=cache)
    assert checked.returncode == 0, checked.stderr
    planned = run_cli("plan", str(path), "--json", cache=cache)
    assert planned.returncode == 0, planned.stderr
    built = run_cli("build", str(path), "--out", str(out), cache=cache)
    assert built.returncode == 0, built.stderr
    assert "Traceback" not in built.stderr

    sheet = json.loads(planned.stdout)
    length = {
        (event["text"], event["side"]): event["end_ms"] - event["start_ms"]
        for event in sheet["events"]
        if event["kind"] == "speech"
    }
    for side in ("rechts", "левый"):
        # Markup is dropped, never obeyed: each marked line sounds as its plain twin.
        for marked, plain in [
            ('Relax. <break time="3s"/> Breathe.', "Relax. Breathe."),
            ("Say [[h@l'oU]] now.", "Say now."),
            ('<speak><prosody rate="x-slow">Slowly</prosody></speak> up.', "Slowly up."),
        ]:
            # Same samples; their ends are rounded to ms apart, so within 1 ms.
            assert abs(length[(marked, side)] - length[(plain, side)]) <= 1, marked
        assert length[('Relax. <break time="3s"/> Breathe.', side)] < 2500

    mp3 = out / "phone" / "odd.mp3"
    assert abs(len(decode(mp3)) - samples(sheet["duration_ms"])) <= samples(30)
    tags = [chapter["tags"] for chapter in ffprobe_chapters(mp3)]
    titles = [tag["title"] for tag in tags if isinstance(tag, dict)]
    assert titles == ["Wade ✨ icke (rechts)", "Wade ✨ icke (левый)"]
    lrc = mp3.with_suffix(".lrc").read_text(encoding="utf-8")
    assert "Dehnübung für die Wade 🧘 — Растяжка 伸展" in lrc and "Готово! 🎉" in lrc
    playlist = (mp3.parent / "playlist.m3u8").read_text(encoding="utf-8")
    assert "Dehnübung für die Wade 🧘 — Растяжка 伸展" in playlist


def test_help_runs_in_a_fresh_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coachtrack", "--help"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and "Example:" in result.stdout


def test_ctrl_c_while_the_cli_is_still_being_imported_is_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its imports take 0.1 to 0.3 s; a Ctrl-C then printed a KeyboardInterrupt traceback.
    import types

    from coachtrack import __main__ as entry
    from coachtrack.errors import INTERRUPTED

    class Importing(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "coachtrack.cli", Importing("coachtrack.cli"))
    with pytest.raises(SystemExit) as stopped:
        entry.main()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == INTERRUPTED + "\n"


@pytest.mark.parametrize("first", [signal.SIGHUP, signal.SIGTERM])
def test_after_a_stop_signal_ctrl_c_no_longer_cuts_the_clean_up_short(first: int) -> None:
    # SIGHUP reaches a build's workers together with the SIGINT the build then sends them:
    # that KeyboardInterrupt cut a worker's clean-up short and left a temporary file.
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {one: signal.getsignal(one) for one in stops}
    try:
        with pytest.raises(Terminated):
            cli._Stop()(first, None)
        try:
            for one in stops:
                os.kill(os.getpid(), one)
            time.sleep(0.01)  # where a KeyboardInterrupt (or "Signal 2 ignored") would land
        except KeyboardInterrupt:
            pytest.fail("a later signal interrupted the clean-up of the first")
    finally:
        for one, handler in previous.items():
            signal.signal(one, handler)
