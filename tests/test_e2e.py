"""The real path, end to end: pyttsx3 + espeak-ng + ffmpeg, through the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from .e2e import decode, ebur128, ffprobe_chapters, onset, run_cli, samples

pytestmark = pytest.mark.engine
SHORT = Path(__file__).parent / "data" / "short.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """The short routine built once for phone, with its cue sheet."""
    root = tmp_path_factory.mktemp("e2e")
    cache, out = root / "cache", root / "out"
    planned = run_cli("plan", str(SHORT), "--json", cache=cache)
    assert planned.returncode == 0, planned.stderr
    built = run_cli("build", str(SHORT), "--out", str(out), cache=cache)
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == str(out / "phone" / "short.mp3")
    return out / "phone" / "short.mp3", json.loads(planned.stdout), cache


def test_decoded_length_matches_the_plan(built: tuple[Path, dict, Path]) -> None:
    mp3, sheet, _ = built
    assert abs(len(decode(mp3)) - samples(sheet["duration_ms"])) <= samples(30)


def test_holds_last_their_planned_length_and_are_silent_but_for_their_cues(
    built: tuple[Path, dict, Path],
) -> None:
    mp3, sheet, _ = built
    pcm = decode(mp3)
    events = sheet["events"]
    holds = [e for e in events if e["kind"] == "hold"]
    assert len(holds) == 2 * (1 + 2) + 1
    for hold in holds:
        start = onset(pcm, samples(hold["start_ms"]), search=samples(50))
        end = onset(pcm, samples(hold["end_ms"]), search=samples(50))
        assert abs((end - start) - samples(hold["end_ms"] - hold["start_ms"])) <= samples(10)
        assert abs(start - samples(hold["start_ms"])) <= samples(10)
        # Inside the hold, only its planned sounds: everything else is (near) silent.
        quiet = np.ones(len(pcm), dtype=bool)
        for e in events:
            if e["kind"] in ("chime", "cue", "countdown", "speech"):
                quiet[samples(e["start_ms"] - 40) : samples(e["end_ms"] + 60)] = False
        inside = pcm[samples(hold["start_ms"]) : samples(hold["end_ms"])]
        mask = quiet[samples(hold["start_ms"]) : samples(hold["end_ms"])]
        assert np.abs(inside[mask].astype(np.int32)).max(initial=0) <= 2


def test_every_planned_sound_is_audible(built: tuple[Path, dict, Path]) -> None:
    mp3, sheet, _ = built
    pcm = decode(mp3).astype(np.float64) / 32768
    sounding = [e for e in sheet["events"] if e["kind"] in ("speech", "cue", "chime", "countdown")]
    kinds = {e["kind"] for e in sounding}
    assert kinds == {"speech", "cue", "chime", "countdown"}
    for e in sounding:
        part = pcm[samples(e["start_ms"]) : samples(e["end_ms"])]
        rms_db = 10 * np.log10(np.mean(part**2) + 1e-12)
        assert rms_db > -45, e


def test_chapters_as_ffprobe_lists_them(built: tuple[Path, dict, Path]) -> None:
    mp3, sheet, _ = built
    chapters = ffprobe_chapters(mp3)
    assert [c["tags"]["title"] for c in chapters] == ["Reach (right)", "Reach (left)", "Rest"]
    assert [c["tags"]["title"] for c in chapters] == [c["title"] for c in sheet["chapters"]]
    assert float(chapters[0]["start_time"]) == 0
    assert abs(float(chapters[-1]["end_time"]) * 1000 - sheet["duration_ms"]) <= 1
    for ours, theirs in zip(sheet["chapters"], chapters, strict=True):
        assert abs(float(theirs["start_time"]) * 1000 - ours["start_ms"]) <= 1


def test_loudness_meets_the_phone_target(built: tuple[Path, dict, Path]) -> None:
    lufs, peak = ebur128(built[0])
    assert abs(lufs - -16) <= 1
    assert peak <= -1.5


def test_lrc_and_playlist_beside_the_track(built: tuple[Path, dict, Path]) -> None:
    mp3, sheet, _ = built
    lrc = mp3.with_suffix(".lrc").read_text(encoding="utf-8")
    assert "[00:01." in lrc and "Short test routine" in lrc and "Reach for your right foot." in lrc
    playlist = (mp3.parent / "playlist.m3u8").read_text(encoding="utf-8")
    assert playlist.startswith("#EXTM3U") and "short.mp3" in playlist
    assert f"#EXTINF:{round(sheet['duration_ms'] / 1000)},Short test routine" in playlist


def test_same_input_gives_the_same_bytes(built: tuple[Path, dict, Path], tmp_path: Path) -> None:
    mp3, _, cache = built
    again = run_cli("build", str(SHORT), "--out", str(tmp_path / "a"), cache=cache)
    fresh = run_cli("build", str(SHORT), "--out", str(tmp_path / "b"), cache=tmp_path / "empty")
    assert again.returncode == 0 and fresh.returncode == 0, again.stderr + fresh.stderr

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert digest(tmp_path / "a" / "phone" / "short.mp3") == digest(mp3)
    assert digest(tmp_path / "b" / "phone" / "short.mp3") == digest(mp3)


def test_a_misspelt_key_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHORT.read_text().replace("breathe: intensify", "breath: intensify"))
    result = run_cli("build", str(bad), "--out", str(tmp_path / "out"), cache=tmp_path / "c")
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}:14:9: steps[0].do[1].breath: ")
    assert "did you mean 'breathe'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
