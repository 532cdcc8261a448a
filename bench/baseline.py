"""The obvious renderer, written straight from the pydub and pyttsx3 docs: the baseline.

It renders a cue sheet (`coachtrack plan PATH --json`) the way the documentation
suggests: one pyttsx3 engine speaking each line to a WAV file (one
`save_to_file` + `runAndWait` at a time, since queued saves write only the last
file), `AudioSegment.from_wav`, a track grown with `+` and padded with
`AudioSegment.silent`, chimes and ticks from `Sine(...).to_audio_segment`, a
hold built as a silent segment with its chime, cues and ticks `overlay`ed, and
`AudioSegment.export` to MP3 at coachtrack's sample rate and bitrate.

It does what coachtrack does to the same events, minus what the docs do not
hand you: no speech cache, no loudness normalization (unless `--loudness`,
which peak-normalizes with `pydub.effects.normalize`), no tags or chapters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyttsx3
from pydub import AudioSegment, effects
from pydub.generators import Sine

FRAME_RATE = 22050
BITRATE = "64k"
RATE_WPM = {"phone": 165, "bedside": 130, "gym": 190}  # as in src/coachtrack/profiles.py
# The chimes as plain sine tones: (frequency in Hz, level in dBFS).
TONES = {
    "start": (660, -9.0),
    "end": (880, -9.0),
    "hold-start": (880, -10.0),
    "hold-end": (660, -10.0),
    "tick": (1760, -16.0),
}
SOUNDING = {"speech", "cue", "chime", "countdown"}


@contextlib.contextmanager
def _timed(stages: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to `stages[name]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start


def _pick_voice(engine: Any, language: str) -> None:
    """Use the first installed voice for `language` (English: the engine's default)."""
    if language == "en":
        return
    for voice in engine.getProperty("voices"):
        if any(str(lang).startswith(language) for lang in voice.languages):
            engine.setProperty("voice", voice.id)
            return


def synthesize(sheet: dict[str, Any], workdir: Path) -> dict[int, AudioSegment]:
    """Speak every spoken event to its own WAV file and load it: event index -> clip."""
    engine = pyttsx3.init()
    engine.setProperty("rate", RATE_WPM.get(sheet["profile"], 165))
    _pick_voice(engine, sheet.get("language", "en"))
    clips: dict[int, AudioSegment] = {}
    # pyttsx3's espeak driver prints "Audio saved to ..." for every file.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for i, event in enumerate(sheet["events"]):
            if event.get("text") is None:
                continue
            wav = workdir / f"line{i:05d}.wav"
            engine.save_to_file(event["text"], str(wav))
            engine.runAndWait()
            clips[i] = AudioSegment.from_wav(str(wav))
    return clips


def tone(sound: str, duration_ms: int) -> AudioSegment:
    """A chime or tick: a sine tone that fades away."""
    freq, level = TONES.get(sound, (880, -10.0))
    beep = Sine(freq, sample_rate=FRAME_RATE).to_audio_segment(duration=duration_ms, volume=level)
    return beep.fade_in(5).fade_out(duration_ms // 2)


def place(track: AudioSegment, segment: AudioSegment, at_ms: int) -> AudioSegment:
    """Append `segment` at `at_ms`, padding with silence, or overlay it where it overlaps."""
    if at_ms >= len(track):
        track += AudioSegment.silent(duration=at_ms - len(track), frame_rate=FRAME_RATE)
        return track + segment
    end = at_ms + len(segment)
    if end > len(track):
        track += AudioSegment.silent(duration=end - len(track), frame_rate=FRAME_RATE)
    return track.overlay(segment, position=at_ms)


def assemble(sheet: dict[str, Any], clips: dict[int, AudioSegment]) -> AudioSegment:
    """Walk the events in time order and build the whole track."""
    events = sheet["events"]
    holds = [e for e in events if e["kind"] == "hold"]
    tones: dict[tuple[str, int], AudioSegment] = {}

    def sound_of(i: int, event: dict[str, Any]) -> AudioSegment:
        if i in clips:
            return clips[i]
        key = (event["sound"], event["end_ms"] - event["start_ms"])
        if key not in tones:
            tones[key] = tone(*key)
        return tones[key]

    def in_hold(event: dict[str, Any]) -> bool:
        return any(h["start_ms"] <= event["start_ms"] < h["end_ms"] for h in holds)

    track = AudioSegment.silent(duration=0, frame_rate=FRAME_RATE)
    for i, event in enumerate(events):
        kind = event["kind"]
        if kind == "hold":
            start, end = event["start_ms"], event["end_ms"]
            hold = AudioSegment.silent(duration=end - start, frame_rate=FRAME_RATE)
            for j, inner in enumerate(events):
                if inner["kind"] in SOUNDING and start <= inner["start_ms"] < end:
                    hold = hold.overlay(sound_of(j, inner), position=inner["start_ms"] - start)
            track = place(track, hold, start)
        elif kind == "pause":
            pause_ms = event["end_ms"] - event["start_ms"]
            track = place(
                track,
                AudioSegment.silent(duration=pause_ms, frame_rate=FRAME_RATE),
                event["start_ms"],
            )
        elif kind in SOUNDING and not in_hold(event):
            track = place(track, sound_of(i, event), event["start_ms"])
    if len(track) < sheet["duration_ms"]:
        track += AudioSegment.silent(
            duration=sheet["duration_ms"] - len(track), frame_rate=FRAME_RATE
        )
    return track.set_frame_rate(FRAME_RATE).set_channels(1)


def _peak_rss_mb(who: int) -> float:
    """Peak resident set size in MB (Linux reports ru_maxrss in KiB).

    Not used for RUSAGE_CHILDREN: ffmpeg is forked from this process, and a forked
    child's ru_maxrss starts at the parent's size, so it would just repeat ours.
    """
    return resource.getrusage(who).ru_maxrss / 1024


def run_baseline(sheet: dict[str, Any], out: Path, *, loudness: bool = False) -> dict[str, Any]:
    """Render `sheet` to the MP3 `out` the obvious way; return times, memory and lengths."""
    stages: dict[str, float] = {}
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp:
        with _timed(stages, "synthesis"):
            clips = synthesize(sheet, Path(tmp))
        with _timed(stages, "mix"):
            track = assemble(sheet, clips)
        stages["loudness"] = 0.0
        if loudness:
            with _timed(stages, "loudness"):
                track = effects.normalize(track, headroom=1.5)
        with _timed(stages, "encode"):
            track.export(
                str(out), format="mp3", bitrate=BITRATE, parameters=["-ar", str(FRAME_RATE)]
            ).close()
    return {
        "routine": sheet["routine"],
        "profile": sheet["profile"],
        "sheet_duration_ms": sheet["duration_ms"],
        "track_ms": len(track),
        "spoken_events": len(clips),
        "stages": stages,
        "total_s": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(resource.RUSAGE_SELF),
        "out": str(out),
        "out_bytes": out.stat().st_size,
    }


def _report(figures: dict[str, Any]) -> str:
    """The figures as a few readable lines."""
    stages = "  ".join(f"{k} {v:.2f} s" for k, v in figures["stages"].items())
    return "\n".join(
        [
            f"baseline: {figures['routine']} ({figures['profile']}), "
            f"{figures['track_ms'] / 60000:.1f} min track, "
            f"{figures['spoken_events']} spoken events",
            f"  total {figures['total_s']:.2f} s:  {stages}",
            f"  peak RSS {figures['peak_rss_mb']:.0f} MB "
            "(this process; bench/run.py measures ffmpeg too)",
            f"  wrote {figures['out']} ({figures['out_bytes'] / 1e6:.1f} MB)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: render one cue sheet file with the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sheet", type=Path, help="cue sheet JSON (coachtrack plan --json)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/baseline.mp3"))
    parser.add_argument("--loudness", action="store_true", help="peak-normalize before export")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    sheet = json.loads(args.sheet.read_text(encoding="utf-8"))
    figures = run_baseline(sheet, args.out, loudness=args.loudness)
    print(json.dumps(figures) if args.json else _report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
