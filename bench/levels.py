"""Measure every track under a folder with ffmpeg's ebur128 filter, against its profile.

    python -m bench.levels [FOLDER]      (default: audio_out)

Prints integrated loudness and true peak per track, and how far each is from its
profile's loudness target and true-peak ceiling; exits 1 when a track is more than
0.3 LU over its target or 1 LU under it (where the build prints a note: the gain
stops short where more would only feed the limiter), or peaks closer to its ceiling
than the room the MP3 true-peak check keeps (0.3 dB).
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coachtrack.build import QUIET_LU
from coachtrack.export import TRUE_PEAK_ROOM_DB
from coachtrack.profiles import get_profile

LU_OVER, LU_UNDER, PEAK_MARGIN_DB = 0.3, QUIET_LU, TRUE_PEAK_ROOM_DB


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) as ffmpeg measures them."""
    err = subprocess.run(
        ["ffmpeg", "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    summary = err[err.rindex("Summary:") :]
    lufs = float(summary.split("I:")[1].split("LUFS")[0])
    peak = float(summary.split("Peak:")[1].split("dBFS")[0])
    return lufs, peak


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path("audio_out")
    tracks = sorted(p for ext in ("mp3", "m4a", "wav") for p in folder.glob(f"*/*.{ext}"))
    with ThreadPoolExecutor(2) as pool:
        measured = list(pool.map(ebur128, tracks))
    bad = 0
    for track, (lufs, peak) in zip(tracks, measured, strict=True):
        profile = get_profile(track.parent.name)
        off = round(lufs - profile.loudness_lufs, 1)  # ffmpeg prints tenths
        room = round(profile.true_peak_dbtp - peak, 1)
        ok = -LU_UNDER <= off <= LU_OVER and room >= PEAK_MARGIN_DB
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {track}: {lufs:6.1f} LUFS ({off:+.1f}), "
              f"peak {peak:5.1f} dBTP ({room:.1f} dB under)")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
