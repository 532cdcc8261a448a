"""Files that appear whole or not at all: dot-prefixed temporary files beside their target.

A writer fills `.NAME.PID-TOKEN.tmp` and renames it onto NAME. A killed writer
leaves its temporary file behind (never NAME itself); the next writer of NAME
removes it once no process with that id runs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

# What a folder of tracks holds besides them, written by coachtrack.
PLAYLIST_NAME = "playlist.m3u8"
INDEX_PAGE = "index.html"  # the list of its tracks, as a page


@contextlib.contextmanager
def temp_beside(path: Path) -> Iterator[Path]:
    """A new, empty, dot-prefixed file beside `path`, removed on exit unless moved away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp: Path | None = None
    try:
        # Created inside the `try`: a Ctrl-C right after the file appears still removes it.
        while True:
            # pid and a random token: concurrent writers of one target never share a name.
            tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            break
        yield tmp
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically and durably: a temporary file, fsync, then a rename."""
    with temp_beside(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)


def remove_stale_temps(path: Path) -> None:
    """Remove the temporary files of `path` whose writer no longer runs."""
    prefix = f".{path.name}."
    for entry in path.parent.glob(glob.escape(prefix) + "*.tmp"):
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            entry.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Whether a process with this id runs here (or might: we are not allowed to see it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (False if either cannot be resolved)."""
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return False
