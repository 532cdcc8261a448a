"""Outputs at the file system's limits: names as long as it takes, and a disk that fills up.

Every text output (the LRC, the page, the playlist, the folder's index) goes through a
dot-prefixed temporary file; neither its longer name nor a failed write may stop the
build with an error that names no file, or names the temporary one.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from coachtrack import export, files, page
from coachtrack.errors import BuildError
from coachtrack.export import TrackInfo

INFO = TrackInfo(
    title="Night cramps",
    album="bedside",
    genre="Fitness",
    comment="",
    language="en",
    duration_ms=60_000,
    chapters=(),
    transcript=((0, "Lie on your back."),),
)
NAME_MAX = 255  # bytes in a file name, on the file systems tests run on


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- long names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a" * 246 + ".lrc",  # 250 bytes: its temporary file's name used to be 270 or so
        "ü" * 125 + ".lrc",  # 254 bytes, two to a character
        "\U0001f44d" * 62 + ".lrc",  # 252 bytes, four to a character
    ],
)
def test_a_long_name_is_written_through_a_temporary_file_that_fits(
    tmp_path: Path, name: str
) -> None:
    target = tmp_path / name
    with files.temp_beside(target) as tmp:
        raw = os.fsencode(tmp.name)
        assert len(raw) <= NAME_MAX
        assert tmp.name.startswith(".") and tmp.name.endswith(".tmp")
        assert raw.decode("utf-8")  # cut between characters, not inside one
    export.write_lrc(target, INFO)
    assert target.read_text(encoding="utf-8") == export.lrc_text(INFO)
    assert leftovers(tmp_path) == []


def test_a_killed_writers_temporary_file_of_a_long_name_is_removed(tmp_path: Path) -> None:
    target = tmp_path / ("a" * 246 + ".lrc")
    # A writer that dies with its temporary file still there, as `kill -9` leaves it.
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from coachtrack import files
        with files.temp_beside(Path({str(target)!r})):
            os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert len(leftovers(tmp_path)) == 1
    export.write_lrc(target, INFO)
    assert leftovers(tmp_path) == []


def test_a_folder_or_file_that_cannot_be_made_is_named_as_the_user_gave_it(
    tmp_path: Path,
) -> None:
    # `--out` under a file, or where nothing may be made: the raw OSError named the
    # temporary file ('[Errno 2] ... /proc/.x.mp3.2811-fe9181a6.tmp') or no file at all.
    (tmp_path / "file").write_text("")
    with pytest.raises(files.WriteError) as made, files.new_folders([tmp_path / "file" / "x"]):
        pass
    assert str(made.value) == f"{tmp_path}/file/x: cannot make the folder: Not a directory"
    # A folder where no file may be made: read-only, or /proc for root, who writes anywhere.
    os.chmod(tmp_path, 0o500)
    try:
        target = (tmp_path if not os.access(tmp_path, os.W_OK) else Path("/proc")) / "x.mp3"
        with pytest.raises(files.WriteError) as written, files.temp_beside(target):
            pass
        assert str(written.value).startswith(f"{target}: cannot write the file: ")
        assert ".tmp" not in str(written.value)
    finally:
        os.chmod(tmp_path, 0o700)


def test_a_stopped_build_removes_the_folders_it_made_while_they_are_empty(tmp_path: Path) -> None:
    (tmp_path / "was").mkdir()
    made = [tmp_path / "out" / "phone", tmp_path / "out" / "gym", tmp_path / "was" / "gym"]
    with pytest.raises(KeyboardInterrupt), files.new_folders(made):
        assert all(folder.is_dir() for folder in made)
        (tmp_path / "out" / "gym" / "done.mp3").write_bytes(b"a finished track")
        raise KeyboardInterrupt
    # What holds a finished track stays, with its parents; "was" was there before.
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "out", "out/gym", "out/gym/done.mp3", "was"
    ]  # fmt: skip
    with files.new_folders(made):  # a build that ends well keeps every folder
        pass
    assert all(folder.is_dir() for folder in made)


def test_a_name_too_long_for_the_file_system_is_refused_naming_it(tmp_path: Path) -> None:
    lrc = tmp_path / ("a" * (NAME_MAX - 3) + ".lrc")
    with pytest.raises(BuildError) as caught:
        export.write_lrc(lrc, INFO)
    message = str(caught.value)
    assert message.startswith(f"{lrc}: ")
    assert "256 bytes" in message and ".tmp" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_track_whose_name_is_too_long_is_refused_before_it_is_encoded(tmp_path: Path) -> None:
    track = tmp_path / ("a" * (NAME_MAX - 3) + ".mp3")

    def chunks() -> Iterator[npt.NDArray[np.int16]]:
        raise AssertionError("encoding began")
        yield np.zeros(0, np.int16)  # pragma: no cover - makes this a generator

    with pytest.raises(BuildError, match="bytes long") as caught:
        export.write_track(track, chunks(), n_samples=22050, sample_rate=22050, info=INFO)
    assert str(caught.value).startswith(f"{track}: ")
    assert list(tmp_path.iterdir()) == []


# --- a full disk ----------------------------------------------------------------------

Writer = Callable[[Path], None]
WRITERS: dict[str, tuple[str, Writer]] = {
    "lrc": ("s.lrc", lambda folder: export.write_lrc(folder / "s.lrc", INFO)),
    "page": ("s.html", lambda folder: page.write_page(folder / "s.html", "<p>page</p>")),
    "playlist": (files.PLAYLIST_NAME, export.write_playlist),
    "playlist entry": (
        files.PLAYLIST_NAME,
        lambda folder: export.add_to_playlist(folder / "s.mp3"),
    ),
    "index": (
        files.INDEX_PAGE,
        lambda folder: page.write_page(
            folder / files.INDEX_PAGE, page.index_page([], profile="phone")
        ),
    ),
}


@pytest.mark.parametrize("output", list(WRITERS))
def test_a_full_disk_names_the_file_and_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    name, writer = WRITERS[output]
    target = tmp_path / name
    target.write_text("#EXTM3U\n", encoding="utf-8")  # the previous build's

    def full(fd: int) -> None:
        # Where a full disk shows up when the file system allocates late (ext4, NFS).
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(BuildError) as caught:
        writer(tmp_path)
    message = str(caught.value)
    assert message == f"{target}: cannot write the file: [Errno 28] {os.strerror(errno.ENOSPC)}"
    # Still an OSError: a build that has stopped writes its playlist and index past one.
    assert isinstance(caught.value, OSError)
    assert target.read_text(encoding="utf-8") == "#EXTM3U\n"
    assert leftovers(tmp_path) == []
