"""`make bench`: coachtrack against the obvious pydub + pyttsx3 renderer, on one cue sheet.

Steps, each in its own subprocess so its time and memory are its own:

1. the cue sheet: `coachtrack plan ROUTINE --profile P --json` (falling back to
   bench/make_sheet.py, and saying so, when the CLI cannot plan yet);
2. the baseline (bench/baseline.py) renders that sheet, speaking every line afresh;
3. coachtrack cold: `build ... --force` with COACHTRACK_CACHE_DIR an empty folder;
4. coachtrack warm, nothing changed (no `--force`);
5. coachtrack warm with `--force` (cached speech, forced re-render);
6. one line of the routine edited (counts the clips that reached the cache);
7. with `--long-hours H`: a routine of about H hours, for peak memory.

Prints wall times, ratios (baseline / coachtrack), peak memory, and per-stage
times (coachtrack's from its `timing: STAGE SECONDS` stderr lines, printed when
COACHTRACK_TIMINGS=1). Everything is written under bench/out/, figures included
(bench/out/results.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(ROOT))

from bench import make_sheet  # noqa: E402

COACHTRACK = [sys.executable, "-m", "coachtrack"]
OUT = ROOT / "bench" / "out"
TIMING = re.compile(r"^timing:\s+(\S+)\s+([0-9.]+)\s*$")
STAGE_ORDER = ("synthesis", "mix", "loudness", "encode")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
COLD_TARGET, WARM_TARGET, LONG_RSS_TARGET_MB = 5.0, 20.0, 200.0


@dataclass
class Run:
    """One measured subprocess."""

    name: str
    cmd: list[str]
    rc: int | None  # None: it could not be started
    wall_s: float = 0.0
    max_rss_mb: float = 0.0  # the largest single process (wait4)
    tree_peak_mb: float = 0.0  # the summed PSS of the process tree, sampled
    stages: dict[str, float] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    note: str = ""

    @property
    def ok(self) -> bool:
        """Whether the command ran and exited 0."""
        return self.rc == 0

    def why(self) -> str:
        """A one-line reason for a failure: the last stderr line, or the exit status."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        status = "could not start" if self.rc is None else f"exit {self.rc}"
        return f"{status}: {lines[-1].strip()}" if lines else status


def _children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_rss_kb(root: int) -> int:
    """Memory of `root` and all its descendants, in KiB: their summed PSS.

    Forked workers share most of their pages with their parent; PSS counts a shared
    page once, split between the processes sharing it, where summed RSS would count
    it in each. Falls back to RSS where the kernel gives no PSS.
    """
    children = _children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        total += _pss_kb(pid)
    return total


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Polls the memory of a process tree (summed PSS) until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._stop_event.is_set():
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join()


def timing_lines(stderr: str) -> dict[str, float]:
    """Stage -> seconds, summed over coachtrack's `timing: STAGE SECONDS` lines."""
    stages: dict[str, float] = {}
    for line in stderr.splitlines():
        if m := TIMING.match(line.strip()):
            stages[m[1]] = stages.get(m[1], 0.0) + float(m[2])
    return stages


def measure(
    name: str, cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800
) -> Run:
    """Run `cmd` from the repository root; time it and sample its memory."""
    print(f"  {name}: {' '.join(cmd[2:] if cmd[:2] == COACHTRACK[:2] else cmd)}", file=sys.stderr)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            return Run(name, cmd, None, stderr=str(exc))
        sampler = TreeSampler(proc.pid)
        sampler.start()
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    max_rss = usage.ru_maxrss / 1024
    run = Run(
        name,
        cmd,
        proc.returncode,
        wall,
        max_rss,
        max(sampler.peak_kb / 1024, max_rss),
        timing_lines(stderr),
        stdout,
        stderr,
    )
    if proc.returncode == -signal.SIGKILL and wall >= timeout:
        run.note = f"killed after {timeout:.0f} s"
    print(f"    {'ok' if run.ok else 'FAILED (' + run.why() + ')'}, {wall:.2f} s", file=sys.stderr)
    return run


def _kill_group(pid: int) -> None:
    """End the process group this script started for one measured command."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def best_of(n: int, attempt: Callable[[], Run]) -> Run:
    """The fastest successful of `n` attempts (or the last one, if none succeeded)."""
    runs = [attempt() for _ in range(max(1, n))]
    good = [r for r in runs if r.ok]
    return min(good, key=lambda r: r.wall_s) if good else runs[-1]


def media_seconds(path: Path) -> float | None:
    """The length of an audio file by ffprobe, or None."""
    if not path.exists() or not shutil.which("ffprobe"):
        return None
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return float(probe.stdout.strip())
    except ValueError:
        return None


def cache_files(root: Path) -> set[Path]:
    """Every file under the speech cache folder."""
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def bench_env(cache: Path) -> dict[str, str]:
    """The environment for a coachtrack run: its own cache folder, timings on."""
    return os.environ | {"COACHTRACK_CACHE_DIR": str(cache), "COACHTRACK_TIMINGS": "1"}


def get_sheet(routine: Path, profile: str, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """The routine's cue sheet from `coachtrack plan --json`, or make_sheet's stand-in."""
    plan = measure(
        "plan", [*COACHTRACK, "plan", str(routine), "--profile", profile, "--json"], env=env
    )
    if plan.ok:
        try:
            return json.loads(plan.stdout), "coachtrack plan --json"
        except json.JSONDecodeError as exc:
            reason = f"its output is not JSON ({exc})"
    else:
        reason = plan.why()
    try:
        sheet = make_sheet.sheet_from_routine(ROOT / routine, profile)
        source = "make_sheet from-routine: coachtrack's timeline, clip lengths estimated"
    except Exception as exc:  # the pure modules may be mid-edit too
        sheet = make_sheet.synthetic_sheet(28.0)
        source = f"make_sheet synthetic 28 min (from-routine failed: {exc})"
    return sheet, f"{source}; `coachtrack plan` failed: {reason}"


def run_baseline(sheet_path: Path, out: Path, repeat: int, *, loudness: bool = False) -> Run:
    """The baseline on a sheet file, in a subprocess; its JSON figures become stages."""
    cmd = [sys.executable, "-m", "bench.baseline", str(sheet_path), "--out", str(out), "--json"]
    run = best_of(repeat, lambda: measure("baseline", cmd + (["--loudness"] if loudness else [])))
    if run.ok:
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        run.stages = figures["stages"]
        run.note = f"{figures['spoken_events']} lines spoken"
    return run


def build_cmd(routine: Path, profile: str, out: Path, *extra: str) -> list[str]:
    """`coachtrack build` of one routine in one profile."""
    return [*COACHTRACK, "build", str(routine), "--profile", profile, "--out", str(out), *extra]


def edited_copy(routine: Path, folder: Path) -> tuple[Path, str]:
    """The routine with one spoken line changed, in `folder` under the same file name."""
    data = yaml.safe_load((ROOT / routine).read_text(encoding="utf-8"))
    for key in ("outro", "intro"):
        lines = data.get(key)
        if isinstance(lines, str):
            data[key] = lines = [lines]
        if lines:
            lines[-1] = lines[-1].rstrip() + " Take your time."
            changed = f"{key}[-1]"
            break
    else:
        data["outro"] = ["Take your time."]
        changed = "outro (added)"
    copy = folder / routine.name
    copy.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return copy, changed


_cli_has_force: list[bool] = [True]  # cleared once the CLI refuses `--force`


def forced_build(name: str, routine: Path, profile: str, track: Path, cache: Path) -> Run:
    """A build that must render: its track is removed first, and `--force` is passed."""
    for stale in (track, track.with_suffix(".lrc")):
        stale.unlink(missing_ok=True)
    out = track.parent.parent
    if _cli_has_force[0]:
        run = measure(name, build_cmd(routine, profile, out, "--force"), env=bench_env(cache))
        if run.ok or "No such option: --force" not in run.stderr:
            return run
        _cli_has_force[0] = False
    run = measure(name, build_cmd(routine, profile, out), env=bench_env(cache))
    run.note = "the CLI has no --force yet: ran without it, the old track removed first"
    return run


def coachtrack_runs(args: argparse.Namespace, routine_id: str, tmp: Path) -> list[Run]:
    """Cold, warm, warm --force and one-line-edited builds of the routine."""
    out = OUT / "coachtrack"
    track = out / args.profile / f"{routine_id}.mp3"
    cache = tmp / "cache-cold"

    def cold() -> Run:
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir()
        return forced_build("cold", args.routine, args.profile, track, cache)

    def warm() -> Run:
        return measure("warm", build_cmd(args.routine, args.profile, out), env=bench_env(cache))

    runs = [best_of(args.repeat, cold), best_of(args.repeat, warm)]
    if not runs[0].ok:
        runs[1].note = "the cache was not warmed: the cold build failed"
    runs.append(
        best_of(
            args.repeat,
            lambda: forced_build("warm --force", args.routine, args.profile, track, cache),
        )
    )
    edit_dir = tmp / "edited"
    edit_dir.mkdir()
    copy, changed = edited_copy(args.routine, edit_dir)
    before = cache_files(cache)
    edit = measure(
        "one line edited", build_cmd(copy, args.profile, edit_dir / "out"), env=bench_env(cache)
    )
    new = len(cache_files(cache) - before)
    edit.note = f"changed {changed}: {new} new file(s) in the speech cache, expect 1 clip"
    runs.append(edit)
    return runs


def long_runs(args: argparse.Namespace, tmp: Path) -> tuple[list[Run], float | None]:
    """A routine of about `--long-hours` hours: cold and forced builds, baseline optional."""
    folder = tmp / "long"
    folder.mkdir()
    routine = folder / "bench-long.yaml"
    routine.write_text(make_sheet.routine_yaml(args.long_hours * 60), encoding="utf-8")
    cache = tmp / "cache-long"
    cache.mkdir()
    track = OUT / "long" / args.profile / "bench-long.mp3"
    label = f"long {args.long_hours:g} h"
    runs = [
        forced_build(f"{label} cold", routine, args.profile, track, cache),
        forced_build(f"{label} --force", routine, args.profile, track, cache),
    ]
    length = media_seconds(track)
    if args.long_baseline:
        sheet, source = get_sheet(routine, args.profile, bench_env(cache))
        sheet_path = OUT / "long-sheet.json"
        sheet_path.write_text(json.dumps(sheet), encoding="utf-8")
        base = run_baseline(sheet_path, OUT / "baseline" / "bench-long.mp3", 1)
        base.name = f"{label} baseline"
        base.note = (base.note + "; " if base.note else "") + f"sheet from {source}"
        runs.insert(0, base)
    return runs, length


def _stage_cells(run: Run, stages: list[str]) -> str:
    return "".join(f"{run.stages[s]:>10.2f}" if s in run.stages else f"{'-':>10}" for s in stages)


def table(base: Run | None, runs: list[Run], targets: dict[str, float]) -> str:
    """The figures as an aligned text table; ratios are against `base`."""
    every = [base, *runs] if base else runs
    stages = [s for s in STAGE_ORDER if any(s in r.stages for r in every)]
    stages += sorted({s for r in every for s in r.stages} - set(stages))
    head = (
        f"{'run':<22}{'wall s':>9}{'ratio':>9}{'target':>9}{'RSS MB':>9}{'tree MB':>9}"
        + "".join(f"{s:>10}" for s in stages)
    )
    rows = [head, "-" * len(head)]
    for run in every:
        if not run.ok:
            rows.append(f"{run.name:<22}FAILED  {run.why()}")
            continue
        ratio = None
        if base and base.ok and run is not base and run.wall_s:
            ratio = base.wall_s / run.wall_s
        target = targets.get(run.name)
        verdict = ""
        if ratio is not None and target is not None:
            verdict = f"{'>=' if ratio >= target else 'MISS '}{target:g}x"
        rows.append(
            f"{run.name:<22}{run.wall_s:>9.2f}"
            f"{(f'{ratio:.1f}x' if ratio is not None else ''):>9}{verdict:>9}"
            f"{run.max_rss_mb:>9.0f}{run.tree_peak_mb:>9.0f}{_stage_cells(run, stages)}"
        )
        if run.note:
            rows.append(f"{'':<22}  {run.note}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table; exit 1 on a failed step (or missed target, --check)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routine", type=Path, default=Path("routines/hamstring-cramps.yaml"))
    parser.add_argument("--profile", default="phone")
    parser.add_argument("--repeat", type=int, default=1, help="keep the fastest of N runs")
    parser.add_argument(
        "--long-hours",
        type=float,
        default=0.0,
        help="also build a routine of about this many hours (memory check)",
    )
    parser.add_argument(
        "--long-baseline",
        action="store_true",
        help="with --long-hours, run the baseline on it too (slow, GBs)",
    )
    parser.add_argument(
        "--loudness", action="store_true", help="baseline peak-normalizes before export"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(
            f"note: load average {load:.1f} on {os.cpu_count()} cores; times will be inflated",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="coachtrack-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print("cue sheet", file=sys.stderr)
        sheet, source = get_sheet(args.routine, args.profile, bench_env(tmp / "cache-plan"))
        sheet_path = OUT / f"{sheet['routine']}-{sheet['profile']}.json"
        sheet_path.write_text(json.dumps(sheet, indent=1), encoding="utf-8")
        print("baseline", file=sys.stderr)
        base_out = OUT / "baseline" / f"{sheet['routine']}.mp3"
        base = run_baseline(sheet_path, base_out, args.repeat, loudness=args.loudness)
        print("coachtrack", file=sys.stderr)
        runs = coachtrack_runs(args, sheet["routine"], tmp)
        long, long_length = long_runs(args, tmp) if args.long_hours else ([], None)
    targets = {"cold": COLD_TARGET, "warm": WARM_TARGET}
    ours = OUT / "coachtrack" / args.profile / f"{sheet['routine']}.mp3"
    lengths = {
        "sheet": sheet["duration_ms"] / 1000,
        "baseline": media_seconds(base_out),
        "coachtrack": media_seconds(ours),
    }
    print(f"\n{args.routine} ({args.profile}); cue sheet from {source}")
    print(
        "track length: "
        + ", ".join(
            f"{k} {v / 60:.2f} min" if v is not None else f"{k} -" for k, v in lengths.items()
        )
    )
    print(
        "ratio = baseline wall / this wall; RSS = largest single process; "
        "tree = summed PSS of the process tree (shared pages counted once; sampled every "
        "20 ms)\n"
    )
    print(table(base, runs, targets))
    missed = [
        r.name
        for r in runs
        if r.ok and base.ok and r.name in targets and base.wall_s / r.wall_s < targets[r.name]
    ]
    if long:
        print(f"\nlong track: {long_length / 60:.1f} min" if long_length else "\nlong track:")
        if args.long_baseline:
            print(table(long[0], long[1:], {}))
        else:
            print(table(None, long, {}))
        for run in long:
            peak = max(run.max_rss_mb, run.tree_peak_mb)
            if run.ok and "baseline" not in run.name and peak >= LONG_RSS_TARGET_MB:
                missed.append(f"{run.name} ({peak:.0f} MB)")
        print(f"target: coachtrack peaks under {LONG_RSS_TARGET_MB:.0f} MB on the long track")
    failed = [r.name for r in (base, *runs, *long) if not r.ok]
    results = {
        "sheet_source": source,
        "lengths_s": lengths,
        "missed": missed,
        "failed": failed,
        "runs": [
            asdict(r) | {"stdout": r.stdout[-2000:], "stderr": r.stderr[-4000:]}
            for r in (base, *runs, *long)
        ],
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}")
    if failed:
        print(f"steps failed: {', '.join(failed)} (details in bench/out/results.json)")
    print(f"figures: {OUT.relative_to(ROOT)}/results.json")
    return 1 if failed or (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
