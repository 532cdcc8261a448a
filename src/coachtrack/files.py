"""Files that appear whole or not at all: dot-prefixed temporary files beside their target.

A writer fills `.NAME.PID-TOKEN.tmp` and renames it onto NAME. A killed writer
leaves its temporary file behind (never NAME itself); the next writer of NAME
removes it once no process with that id runs. A NAME too long to leave room for
the rest is cut short in the temporary file's name, so any name that fits its
file system can be written.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coachtrack.errors import STOPS, BuildError

# What a folder of tracks holds besides them, written by coachtrack.
PLAYLIST_NAME = "playlist.m3u8"
INDEX_PAGE = "index.html"  # the list of its tracks, as a page

_NAME_MAX = 255  # bytes in a file name where the file system does not say (as ext4, tmpfs)
# What a temporary file's name adds to NAME at most: two dots, a pid (a 32-bit
# pid_t), a dash, the token and ".tmp".
_TEMP_NAME_EXTRA = len(f"..{2**31}-{'0' * 8}.tmp")


class WriteError(BuildError, OSError):
    """A file that could not be written, named in the message (the OSError alone may name no
    file, or only its temporary one).

    Still an OSError, for the callers that carry on past a write that failed.
    """


def make_folder(folder: Path) -> None:
    """Make `folder` and its missing parents; a failure is a WriteError naming it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(f"{folder}: cannot make the folder: {error.strerror or error}") from error


@contextlib.contextmanager
def new_folders(folders: Iterable[Path]) -> Iterator[None]:
    """Make `folders` and their missing parents; should the block fail (Ctrl-C, a bad
    music file, a failed track), remove those made here that are still empty, so that a
    stopped build leaves no empty folder behind. Folders that held something stay."""
    made: set[Path] = set()
    try:
        for folder in folders:
            made.update(p for p in (folder, *folder.parents) if not p.exists())
            make_folder(folder)
        yield
    except BaseException:
        for folder in sorted(made, key=lambda p: len(p.parts), reverse=True):  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


@contextlib.contextmanager
def temp_beside(path: Path) -> Iterator[Path]:
    """A new, empty, dot-prefixed file beside `path`, removed on exit unless moved away.

    A failure to make it is a WriteError naming `path`, not the temporary file.
    """
    make_folder(path.parent)
    name_max = _name_max(path.parent)
    size = len(os.fsencode(path.name))
    if size > name_max:  # caught here, before the work, and not blamed on the temporary file
        raise WriteError(
            f"{path}: cannot write the file: its name is {size} bytes long, "
            f"over the {name_max} a file name may have"
        )
    prefix = _temp_prefix(path, name_max)
    _remove_stale_temps(path.parent, prefix)
    tmp: Path | None = None
    try:
        # Created inside the `try`: a Ctrl-C right after the file appears still removes it.
        while True:
            # pid and a random token: concurrent writers of one target never share a name.
            tmp = path.with_name(f"{prefix}{os.getpid()}-{secrets.token_hex(4)}.tmp")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            except OSError as error:
                tmp = None
                message = f"{path}: cannot write the file: {error.strerror or error}"
                raise WriteError(message) from error
            break
        yield tmp
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def stops_held() -> Iterator[None]:
    """Hold Ctrl-C and the stop signals off while the block runs, then act on the first
    that came: files swapped in as a set (a track, then its page and LRC) are all swapped.

    The same signal twice (Ctrl-C pressed again) acts at once: the block may be waiting on
    another build's lock. Another one is held too: SIGHUP reaches a build's workers with
    the SIGINT the build then sends them. Only the main thread can set signal handlers;
    elsewhere nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous: dict[int, Any] = {}

    def hold(signum: int, frame: object) -> None:
        if signum in held:  # asked twice: stop now, as the handler before would have
            held.clear()
            signal.signal(signum, previous[signum])
            signal.raise_signal(signum)
        else:
            held.append(signum)

    for stop in STOPS:
        previous[stop] = signal.signal(stop, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically and durably: a temporary file, fsync, then a rename.

    A failure (a full disk) is a WriteError naming `path`.
    """
    try:
        with temp_beside(path) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as error:
        raise WriteError(f"{path}: cannot write the file: {error}") from error


def _remove_stale_temps(folder: Path, prefix: str) -> None:
    """Remove the temporary files in `folder` named from `prefix` whose writer no longer
    runs."""
    for entry in folder.glob(glob.escape(prefix) + "*.tmp"):
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            entry.unlink(missing_ok=True)


def _temp_prefix(path: Path, name_max: int) -> str:
    """What the names of `path`'s temporary files start with: a dot, its name, a dot.

    The name is cut short, between two characters, where a temporary file's name would
    otherwise be longer than `name_max` bytes.
    """
    name = os.fsencode(path.name)
    room = name_max - _TEMP_NAME_EXTRA
    if len(name) > room:
        while room > 0 and name[room] & 0xC0 == 0x80:  # inside a UTF-8 character
            room -= 1
        name = name[:room]
    return f".{os.fsdecode(name)}."


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, that the file system of `folder` takes."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no answer here
        return _NAME_MAX
    return limit if limit > 0 else _NAME_MAX


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


def digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class Written:
    """A file as its writer left it: the SHA-256 of its bytes, and which file it is."""

    digest: str
    identity: tuple[int, int]  # (st_dev, st_ino): kept when the file is renamed

    @classmethod
    def of(cls, path: Path) -> Written:
        st = os.stat(path)
        return cls(digest(path), (st.st_dev, st.st_ino))

    def is_at(self, path: Path) -> bool:
        """Whether `path` is still this very file (no other writer has replaced it)."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.identity


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold `folder` while this process writes what it shares with other builds into it.

    Two builds writing into one folder at once take turns here, so that one's track,
    page and LRC, or the folder's playlist and index, are each written as one build
    saw them. The lock is on the folder itself (nothing is left behind) and goes with
    the process however it ends. Where a folder cannot be locked (no `flock`, as on
    Windows), the writes go ahead as they would alone.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        fd = None
    try:
        if fd is not None:
            with contextlib.suppress(ImportError, OSError):
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)
