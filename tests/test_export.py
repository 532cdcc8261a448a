"""Export: real ffmpeg, short synthetic tracks, read back by ffmpeg, ffprobe and mutagen."""

# mutagen's classes carry no type hints.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from mutagen.id3 import ID3, CTOCFlags

from coachtrack import export, files
from coachtrack.errors import BuildError, Terminated
from coachtrack.export import (
    Chapter,
    TrackInfo,
    add_to_playlist,
    read_track_info,
    write_lrc,
    write_playlist,
    write_track,
)
from coachtrack.tools import ffmpeg_path, ffprobe_path

SR = 22050
TONE_MS = 400
ONSETS = (int(1.0 * SR), int(3.3 * SR) + 17, int(5.9 * SR) + 301, int(8.2 * SR) + 5)
N_TONES = int(10.0 * SR) + 15  # n % 576 == 15: the case ffmpeg's own LAME tag gets wrong

FFPROBE = ffprobe_path()
needs_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="ffprobe is not installed")

Samples = npt.NDArray[np.int16]


def tone_bursts(n: int = N_TONES, onsets: tuple[int, ...] = ONSETS) -> Samples:
    """Sine bursts starting at phase 0 on the given samples; exact zeros elsewhere."""
    pcm = np.zeros(n, np.int16)
    length = TONE_MS * SR // 1000
    burst = (8000 * np.sin(2 * np.pi * 440 * np.arange(length) / SR)).astype(np.int16)
    for onset in onsets:
        pcm[onset : onset + length] = burst[: n - onset]
    return pcm


def in_chunks(pcm: Samples) -> Iterator[Samples]:
    """Uneven chunks, so nothing depends on chunk boundaries."""
    sizes = (1000, 7777, 333, 22050)
    start = 0
    for i in range(len(pcm)):
        if start >= len(pcm):
            return
        stop = start + sizes[i % len(sizes)]
        yield pcm[start:stop]
        start = stop


def info_for(duration_ms: int, n_chapters: int = 3, language: str = "en") -> TrackInfo:
    step = duration_ms // n_chapters
    chapters = tuple(
        Chapter(
            f"Step {i + 1}: stretch ({'right' if i % 2 == 0 else 'left'}) ü",
            i * step,
            duration_ms if i == n_chapters - 1 else (i + 1) * step,
        )
        for i in range(n_chapters)
    )
    return TrackInfo(
        title="Hamstring cramps: pressure points",
        album="phone",
        genre="Fitness",
        comment="Source: Liebscher & Bracht. Stop if a position hurts.",
        language=language,
        duration_ms=duration_ms,
        chapters=chapters,
        transcript=((0, "Sit on the floor."), (4210, "Breathe out; go deeper.")),
    )


INFO = info_for(round(N_TONES * 1000 / SR))


def write(path: Path, pcm: Samples, fmt: export.TrackFormat = "mp3", **kw: object) -> None:
    info = kw.pop("info", INFO)
    assert isinstance(info, TrackInfo)
    write_track(path, in_chunks(pcm), n_samples=len(pcm), sample_rate=SR, info=info, fmt=fmt)


def decode(path: Path) -> Samples:
    """The track as ffmpeg decodes it, mono 16-bit at 22.05 kHz."""
    # fmt: off
    command = [ffmpeg_path(), "-v", "error", "-i", str(path),
               "-f", "s16le", "-ac", "1", "-ar", str(SR), "-"]
    # fmt: on
    out = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int16)


def probe(path: Path) -> dict[str, object]:
    assert FFPROBE is not None
    command = [FFPROBE, "-v", "error", "-show_chapters", "-show_format", "-of", "json", str(path)]
    result: dict[str, object] = json.loads(
        subprocess.run(command, capture_output=True, check=True).stdout
    )
    return result


def onset_of(decoded: Samples, expected: int) -> int:
    """The first sample near `expected` where the tone is clearly there."""
    window = decoded[expected - SR // 10 : expected + SR // 10]
    return expected - SR // 10 + int(np.argmax(np.abs(window.astype(np.int32)) > 2000))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- MP3 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_samples",
    [
        N_TONES,  # n % 576 == 15
        10 * SR,  # n % 576 == 468
        10 * SR + 46,  # the last length ffmpeg alone gets wrong
        10 * SR + 47,
        576 * 100,  # whole frames
        1105,  # less than one frame of delay
    ],
)
@pytest.mark.parametrize("encoder", ["lame", "ffmpeg"])
def test_mp3_decodes_to_exactly_n_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_samples: int, encoder: str
) -> None:
    monkeypatch.setenv(export.ENCODER_ENV, encoder)
    pcm = tone_bursts(n_samples, onsets=(0,))
    track = tmp_path / "t.mp3"
    write(track, pcm)
    assert len(decode(track)) == n_samples
    assert read_track_info(track).duration_ms == round(n_samples * 1000 / SR)


def test_mp3_onsets_stay_put_and_silence_stays_digital(tmp_path: Path) -> None:
    track = tmp_path / "t.mp3"
    write(track, tone_bursts())
    decoded = decode(track)
    offsets = [onset_of(decoded, onset) - onset for onset in ONSETS]
    assert all(abs(offset) <= SR // 100 for offset in offsets), offsets  # 10 ms
    tone = TONE_MS * SR // 1000
    margin = SR // 5  # 200 ms: several frames away from any tone
    quiet = np.ones(len(decoded), bool)
    for onset in ONSETS:
        quiet[max(0, onset - margin) : onset + tone + margin] = False
    assert quiet.sum() > 4 * SR
    assert not decoded[quiet].any()


def test_mp3_tags_read_back_by_mutagen(tmp_path: Path) -> None:
    track = tmp_path / "t.mp3"
    write(track, tone_bursts())
    tags = ID3(track)
    assert tags.version[:2] == (2, 3)
    assert tags["TIT2"].text == [INFO.title]
    assert tags["TPE1"].text == ["coachtrack"]
    assert tags["TALB"].text == ["phone"]
    assert tags["TCON"].text == ["Fitness"]
    (comment,) = tags.getall("COMM")
    assert (comment.lang, comment.text) == ("eng", [INFO.comment])
    (lyrics,) = tags.getall("USLT")
    assert lyrics.lang == "eng"
    assert lyrics.text == "Sit on the floor.\nBreathe out; go deeper."
    (toc,) = tags.getall("CTOC")
    assert toc.flags & CTOCFlags.TOP_LEVEL and toc.flags & CTOCFlags.ORDERED
    assert toc.child_element_ids == ["ch0", "ch1", "ch2"]
    summary = read_track_info(track)
    assert summary.title == INFO.title
    assert summary.duration_ms == INFO.duration_ms
    assert summary.chapters == INFO.chapters


def test_german_track_has_german_language_fields(tmp_path: Path) -> None:
    track = tmp_path / "t.mp3"
    write(track, tone_bursts(), info=info_for(INFO.duration_ms, language="de"))
    tags = ID3(track)
    assert [f.lang for f in tags.getall("COMM") + tags.getall("USLT")] == ["deu", "deu"]
    assert tags["TLAN"].text == ["deu"]  # the language the track speaks


@needs_ffprobe
def test_mp3_tags_and_chapters_read_back_by_ffprobe(tmp_path: Path) -> None:
    track = tmp_path / "t.mp3"
    info = info_for(INFO.duration_ms, n_chapters=12)  # past ch9, where name order != time order
    write(track, tone_bursts(), info=info)
    probed = probe(track)
    fmt = probed["format"]
    assert isinstance(fmt, dict)
    tags = fmt["tags"]
    assert tags["title"] == info.title
    assert tags["artist"] == "coachtrack"
    assert tags["album"] == "phone"
    assert tags["genre"] == "Fitness"
    assert tags["comment"] == info.comment
    assert tags["lyrics-eng"] == "Sit on the floor.\nBreathe out; go deeper."
    chapters = probed["chapters"]
    assert isinstance(chapters, list)
    listed = [(c["tags"]["title"], c["start"], c["end"], c["time_base"]) for c in chapters]
    assert listed == [(c.title, c.start_ms, c.end_ms, "1/1000") for c in info.chapters]


def many_chapters(n: int) -> TrackInfo:
    """INFO with `n` chapters of 10 ms each, over a track as long as they are."""
    chapters = tuple(Chapter(f"Step {i + 1}", 10 * i, 10 * (i + 1)) for i in range(n))
    return dataclasses.replace(INFO, duration_ms=10 * n, chapters=chapters)


def test_255_chapters_have_one_table_of_contents(tmp_path: Path) -> None:
    # The most one CTOC can list: the tag stays as it always was.
    track = tmp_path / "t.mp3"
    info = many_chapters(255)
    write(track, tone_bursts(info.duration_ms * SR // 1000, onsets=(0,)), info=info)
    (toc,) = ID3(track).getall("CTOC")
    assert toc.element_id == "toc"
    assert toc.flags == CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED
    assert toc.child_element_ids == [f"ch{i}" for i in range(255)]
    assert read_track_info(track).chapters == info.chapters


@needs_ffprobe
def test_more_than_255_chapters_are_all_written_in_order(tmp_path: Path) -> None:
    # A CTOC counts its entries in one byte: past 255, the top-level one lists CTOCs.
    track = tmp_path / "t.mp3"
    info = many_chapters(300)
    write(track, tone_bursts(info.duration_ms * SR // 1000, onsets=(0,)), info=info)
    tocs = {toc.element_id: toc for toc in ID3(track).getall("CTOC")}
    (top,) = [toc for toc in tocs.values() if toc.flags & CTOCFlags.TOP_LEVEL]
    assert all(toc.flags & CTOCFlags.ORDERED for toc in tocs.values())
    assert all(len(toc.child_element_ids) <= 255 for toc in tocs.values())
    listed = [e for toc in top.child_element_ids for e in tocs[toc].child_element_ids]
    assert listed == [f"ch{i}" for i in range(300)]
    assert read_track_info(track).chapters == info.chapters
    chapters = probe(track)["chapters"]
    assert isinstance(chapters, list)
    probed = [(c["tags"]["title"], c["start"], c["end"]) for c in chapters]
    assert probed == [(c.title, c.start_ms, c.end_ms) for c in info.chapters]


def test_a_table_of_contents_that_lists_itself_is_read_once(tmp_path: Path) -> None:
    track = tmp_path / "t.mp3"
    write(track, tone_bursts())
    tags = ID3(track)
    (toc,) = tags.getall("CTOC")
    toc.child_element_ids = ["ch0", "toc", "ch1", "toc", "ch2"]
    tags.save(v2_version=3)
    assert read_track_info(track).chapters == INFO.chapters


# --- M4A and WAV ------------------------------------------------------------------


@needs_ffprobe
def test_m4a_has_tags_chapters_and_length(tmp_path: Path) -> None:
    track = tmp_path / "t.m4a"
    write(track, tone_bursts(), "m4a")
    probed = probe(track)
    fmt = probed["format"]
    assert isinstance(fmt, dict)
    tags = fmt["tags"]
    assert (tags["title"], tags["artist"], tags["album"]) == (INFO.title, "coachtrack", "phone")
    assert (tags["genre"], tags["comment"]) == ("Fitness", INFO.comment)
    assert tags["lyrics"] == "Sit on the floor.\nBreathe out; go deeper."
    chapters = probed["chapters"]
    assert isinstance(chapters, list)
    listed = [
        (
            c["tags"]["title"],
            round(float(c["start_time"]) * 1000),
            round(float(c["end_time"]) * 1000),
        )
        for c in chapters
    ]
    assert listed == [(c.title, c.start_ms, c.end_ms) for c in INFO.chapters]
    decoded = decode(track)
    assert abs(len(decoded) - N_TONES) <= SR * 30 // 1000
    offsets = [onset_of(decoded, onset) - onset for onset in ONSETS]
    assert all(abs(offset) <= SR // 100 for offset in offsets), offsets
    summary = read_track_info(track)
    assert summary.title == INFO.title
    assert abs(summary.duration_ms - INFO.duration_ms) <= 30
    assert [c.title for c in summary.chapters] == [c.title for c in INFO.chapters]


def test_wav_holds_exactly_the_samples(tmp_path: Path) -> None:
    track = tmp_path / "t.wav"
    pcm = tone_bursts()
    write(track, pcm, "wav")
    assert np.array_equal(decode(track), pcm)
    assert read_track_info(track) == (INFO.title, INFO.duration_ms, ())
    with wave.open(str(track)) as w:  # the tags follow the samples: readers skip them
        assert w.getnframes() == len(pcm)


def test_wav_carries_its_tags_as_riff_info(tmp_path: Path) -> None:
    track = tmp_path / "t.wav"
    info = dataclasses.replace(INFO, title="Übung: Wade & Knie", comment="Odd length")
    write(track, tone_bursts(), "wav", info=info)
    command = [FFPROBE, "-v", "error", "-show_entries", "format_tags", "-of", "json",
               str(track)]  # fmt: skip
    tags = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
    assert tags["format"]["tags"] == {
        "title": "Übung: Wade & Knie", "artist": "coachtrack", "album": INFO.album,
        "genre": INFO.genre, "comment": "Odd length",
    }  # fmt: skip
    assert read_track_info(track).title == "Übung: Wade & Knie"
    plain = tmp_path / "plain.wav"  # a WAV without them (not ours): its file name
    with wave.open(str(plain), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(b"\0\0" * SR)
    assert read_track_info(plain) == ("plain", 1000, ())


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "wav"])
def test_same_input_gives_the_same_bytes(tmp_path: Path, fmt: export.TrackFormat) -> None:
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    write(first, tone_bursts(), fmt)
    write(second, tone_bursts(), fmt)
    assert first.read_bytes() == second.read_bytes()


# --- atomic writes and failures ---------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "wav"])
@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_interrupted_write_leaves_the_previous_file(
    tmp_path: Path, fmt: export.TrackFormat, error: type[BaseException]
) -> None:
    track = tmp_path / f"t.{fmt}"
    track.write_bytes(b"the previous build")
    pcm = tone_bursts()

    def interrupted() -> Iterator[Samples]:
        yield pcm[: len(pcm) // 2]
        raise error

    with pytest.raises(error):
        write_track(track, interrupted(), n_samples=len(pcm), sample_rate=SR, info=INFO, fmt=fmt)
    assert track.read_bytes() == b"the previous build"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("signals", "waits"),
    [
        ((signal.SIGINT,), True),
        ((signal.SIGINT, signal.SIGINT), False),  # Ctrl-C pressed again: at once, as before
        ((signal.SIGTERM, signal.SIGINT), True),  # the SIGINT a stopped build sends its workers
    ],
)
def test_ctrl_c_as_the_track_is_swapped_in_waits_for_the_files_that_go_with_it(
    tmp_path: Path, signals: tuple[int, ...], waits: bool
) -> None:
    # Ctrl-C right after the new track was moved into place left it beside the old LRC.
    track, lrc = tmp_path / "t.wav", tmp_path / "t.lrc"
    lrc.write_text("the previous build's")
    pcm = tone_bursts()

    def terminated(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)  # as coachtrack's own handler does

    def publish(written: files.Written) -> None:
        for one in signals:
            os.kill(os.getpid(), one)
        lrc.write_text("this build's")

    try:
        with pytest.raises(KeyboardInterrupt):
            write_track(track, [pcm], n_samples=len(pcm), sample_rate=SR, info=INFO, fmt="wav",
                        then=publish)  # fmt: skip
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is terminated
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert leftovers(tmp_path) == []
    assert lrc.read_text() == ("this build's" if waits else "the previous build's")


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "wav"])
def test_wrong_sample_count_is_refused(tmp_path: Path, fmt: export.TrackFormat) -> None:
    pcm = tone_bursts()
    with pytest.raises(ValueError, match="samples"):
        write_track(
            tmp_path / f"t.{fmt}", [pcm], n_samples=len(pcm) + 1, sample_rate=SR, info=INFO, fmt=fmt
        )
    assert list(tmp_path.iterdir()) == []


def test_non_int16_chunks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="int16"):
        write_track(
            tmp_path / "t.mp3", [np.zeros(10, np.float32)], n_samples=10, sample_rate=SR, info=INFO
        )
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writes_of_one_target_both_succeed(tmp_path: Path) -> None:
    track = tmp_path / "t.mp3"
    errors: list[BaseException] = []

    def build() -> None:
        try:
            write(track, tone_bursts())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(decode(track)) == N_TONES
    assert leftovers(tmp_path) == []


def test_ffmpeg_failure_is_a_build_error_with_its_message(tmp_path: Path) -> None:
    track = tmp_path / "t.mp3"
    track.write_bytes(b"the previous build")
    pcm = tone_bursts()
    with pytest.raises(BuildError, match=r"ffmpeg failed \(exit status 1\): .+") as caught:
        # libmp3lame has no 12345 Hz mode: ffmpeg refuses, after some input has gone in.
        write_track(track, in_chunks(pcm), n_samples=len(pcm), sample_rate=12345, info=INFO)
    assert str(track) in str(caught.value)
    assert track.read_bytes() == b"the previous build"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("encoder", "message"), [("lame", "cannot write"), ("ffmpeg", "ffmpeg")])
def test_disk_full_is_a_build_error(tmp_path: Path, encoder: str, message: str) -> None:
    # A file-size limit makes writes fail past 20 kB, for ffmpeg as for a full disk.
    script = textwrap.dedent(
        f"""
        import resource, sys
        from pathlib import Path
        import numpy as np
        from coachtrack.errors import BuildError
        from coachtrack.export import TrackInfo, write_track
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        info = TrackInfo("t", "phone", "Fitness", "", "en", 60_000, (), ())
        try:
            write_track(Path({str(tmp_path)!r}) / "t.mp3", [np.zeros({60 * SR}, np.int16)],
                        n_samples={60 * SR}, sample_rate={SR}, info=info)
        except BuildError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    env = {**os.environ, export.ENCODER_ENV: encoder}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 3, result.stderr
    assert str(tmp_path / "t.mp3") in result.stdout
    assert message in result.stdout
    assert list(tmp_path.iterdir()) == []


# --- LRC and playlist -------------------------------------------------------------


def test_lrc_is_exact(tmp_path: Path) -> None:
    info = TrackInfo(
        title="Night cramps",
        album="bedside",
        genre="Fitness",
        comment="",
        language="en",
        duration_ms=4_561_499,
        chapters=(),
        transcript=((0, "Lie on your back."), (12_349, "Breathe\nout."), (4_502_109, "Done.")),
    )
    lrc = tmp_path / "night.lrc"
    write_lrc(lrc, info)
    assert lrc.read_text(encoding="utf-8") == (
        "[ti:Night cramps]\n"
        "[ar:coachtrack]\n"
        "[al:bedside]\n"
        "[length: 76:01]\n"
        "[00:00.00]Lie on your back.\n"
        "[00:12.34]Breathe out.\n"
        "[75:02.10]Done.\n"
    )
    assert leftovers(tmp_path) == []


def test_playlist_lists_every_track_by_name(tmp_path: Path) -> None:
    write(tmp_path / "b-hamstring.mp3", tone_bursts())
    short = tone_bursts(3 * SR + 11_025, onsets=(SR,))  # 3.5 s: rounds up
    write(tmp_path / "a-calf.wav", short, "wav")
    write(tmp_path / "c-neck.m4a", short, "m4a", info=info_for(3500))
    (tmp_path / "b-hamstring.lrc").write_text("not a track")
    (tmp_path / ".d.mp3.123-abcd.tmp").write_bytes(b"")
    write_playlist(tmp_path)
    assert (tmp_path / "playlist.m3u8").read_text(encoding="utf-8") == (
        "#EXTM3U\n"
        "#EXTINF:4,Hamstring cramps: pressure points\n"
        "a-calf.wav\n"
        "#EXTINF:10,Hamstring cramps: pressure points\n"
        "b-hamstring.mp3\n"
        "#EXTINF:4,Hamstring cramps: pressure points\n"
        "c-neck.m4a\n"
    )


def test_a_track_is_added_to_a_playlist_without_touching_its_other_lines(tmp_path: Path) -> None:
    write(tmp_path / "s.mp3", tone_bursts())
    (tmp_path / "music.mp3").write_bytes((tmp_path / "s.mp3").read_bytes())
    add_to_playlist(tmp_path / "s.mp3")  # no playlist yet: this track alone, not the music
    assert (tmp_path / "playlist.m3u8").read_text(encoding="utf-8") == (
        "#EXTM3U\n#EXTINF:10,Hamstring cramps: pressure points\ns.mp3\n"
    )
    theirs = "#EXTM3U\n# my mix\n#EXTINF:200,Song\n../music/song.mp3\n"
    theirs += "#EXTINF:3,Old title\ns.mp3\nx.mp3\n"
    (tmp_path / "playlist.m3u8").write_text(theirs, encoding="utf-8")
    add_to_playlist(tmp_path / "s.mp3")
    add_to_playlist(tmp_path / "s.mp3")  # once is enough
    assert (tmp_path / "playlist.m3u8").read_text(encoding="utf-8") == theirs.replace(
        "#EXTINF:3,Old title", "#EXTINF:10,Hamstring cramps: pressure points"
    )
    write(tmp_path / "x.mp3", tone_bursts())
    add_to_playlist(tmp_path / "x.mp3")  # listed bare: its entry line goes before it
    assert (
        (tmp_path / "playlist.m3u8")
        .read_text(encoding="utf-8")
        .endswith("s.mp3\n#EXTINF:10,Hamstring cramps: pressure points\nx.mp3\n")
    )


def read_m3u8(playlist: Path) -> list[tuple[str, Path]]:
    """A playlist as a player reads it: each entry's `#EXTINF` title and the file it plays.

    Lines that start with `#` are directives or comments; every other line is a path.
    """
    entries, title = [], None
    for line in playlist.read_text(encoding="utf-8").splitlines():
        if line.startswith("#EXTINF:"):
            title = line.split(",", 1)[1]
        elif line and not line.startswith("#"):
            entries.append((title or "", playlist.parent / line))
            title = None
    return entries


def test_playlist_entries_survive_a_title_on_two_lines_and_a_name_starting_with_hash(
    tmp_path: Path,
) -> None:
    two_lines = dataclasses.replace(INFO, title="Warm-up\nand stretch\r\nagain")
    write(tmp_path / "#1 warm-up.mp3", tone_bursts(), info=two_lines)
    write(tmp_path / "calf.mp3", tone_bursts())
    write_playlist(tmp_path)
    entries = read_m3u8(tmp_path / "playlist.m3u8")
    assert [(title, path.name) for title, path in entries] == [
        ("Warm-up and stretch again", "#1 warm-up.mp3"),
        ("Hamstring cramps: pressure points", "calf.mp3"),
    ]
    assert all(path.is_file() for _, path in entries)
    # A session's entry (`mix --out FILE`) is written so too, and found again next time.
    (tmp_path / "playlist.m3u8").unlink()
    add_to_playlist(tmp_path / "#1 warm-up.mp3")
    add_to_playlist(tmp_path / "#1 warm-up.mp3")  # once is enough
    add_to_playlist(tmp_path / "calf.mp3")
    text = (tmp_path / "playlist.m3u8").read_text(encoding="utf-8")
    assert text.count("./#1 warm-up.mp3") == 1, text
    assert [(t, p.name) for t, p in read_m3u8(tmp_path / "playlist.m3u8")] == [
        ("Warm-up and stretch again", "#1 warm-up.mp3"),
        ("Hamstring cramps: pressure points", "calf.mp3"),
    ]


def test_playlist_survives_a_damaged_track(tmp_path: Path) -> None:
    (tmp_path / "broken.mp3").write_bytes(b"\0" * 100)
    write_playlist(tmp_path)
    text = (tmp_path / "playlist.m3u8").read_text(encoding="utf-8")
    assert text == "#EXTM3U\n#EXTINF:-1,broken\nbroken.mp3\n"


# --- streaming --------------------------------------------------------------------


def test_long_track_is_streamed_not_gathered(tmp_path: Path) -> None:
    # 10 minutes is 26 MB of samples; the encoder must see them chunk by chunk.
    minutes = 10
    chunk = np.zeros(SR, np.int16)
    chunk[:2205] = 3000  # a click a second, so the track is not all silence
    n_samples = minutes * 60 * SR

    def seconds() -> Iterator[Samples]:
        for _ in range(minutes * 60):
            yield chunk

    track = tmp_path / "long.mp3"
    tracemalloc.start()
    try:
        info = info_for(minutes * 60_000)
        write_track(track, seconds(), n_samples=n_samples, sample_rate=SR, info=info)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak
    assert read_track_info(track).duration_ms == minutes * 60_000
    assert os.path.getsize(track) > minutes * 60 * 64_000 // 8 * 0.9
