"""The chimes: built from tones, they must sound like what they stand for."""

from __future__ import annotations

import numpy as np
import pytest

from coachtrack.sounds import SOUND_NAMES, sound_set

RATE = 22050


@pytest.mark.parametrize("chimes", ["bell", "soft-bell"])
@pytest.mark.parametrize("name", SOUND_NAMES)
def test_a_bell_dies_away_to_silence_rather_than_breaking_off(chimes: str, name: str) -> None:
    sound = sound_set(chimes, RATE)[name].astype(np.float64)
    peak = np.max(np.abs(sound))
    last = np.max(np.abs(sound[-RATE // 100 :]))  # its last 10 ms
    # Cut in its last 10 ms, a bell stopped 26 to 31 dB under its peak: a ring heard
    # to break off in a quiet room.
    assert 20 * np.log10(last / peak) < -40
    assert sound[-1] == 0.0  # and it ends in digital silence
