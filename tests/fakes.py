"""Test doubles: a speech engine that needs no voice, for fast tests of the code around it."""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Sequence

import numpy as np
import numpy.typing as npt

from coachtrack import SAMPLE_RATE
from coachtrack.errors import BuildError, UserError
from coachtrack.speech import SpeechRequest, VoiceInfo

Clip = npt.NDArray[np.float32]

FAKE_VOICES = (
    VoiceInfo("fake/en", "Fake English", ("en-gb",), "Male"),
    VoiceInfo("fake/de", "Fake German", ("de",), "Female"),
)


class FakeEngine:
    """A deterministic tone burst per line: its length follows the text's length and the rate."""

    name = "fake-engine-1"

    def __init__(self, *, fail_on: Sequence[str] = ()) -> None:
        self.calls: list[list[SpeechRequest]] = []  # the requests of each stream() call
        self.fail_on = frozenset(fail_on)  # texts that make it raise BuildError

    @property
    def spoken(self) -> list[SpeechRequest]:
        """Every request synthesized so far, in order."""
        return [request for call in self.calls for request in call]

    def voices(self) -> list[VoiceInfo]:
        """The two fake voices."""
        return list(FAKE_VOICES)

    def voice_for(self, language: str) -> str:
        """fake/en or fake/de."""
        for voice in FAKE_VOICES:
            if any(tag.split("-")[0] == language for tag in voice.languages):
                return voice.id
        raise UserError(f'no speech voice for language "{language}"')

    def close(self) -> None:
        """Nothing to let go of."""

    def stream(
        self, requests: Sequence[SpeechRequest], jobs: int = 2
    ) -> Generator[tuple[SpeechRequest, Clip], None, None]:
        """A clip per distinct request, as the real engine would give it: the lines that
        fail are reported once the others have come."""
        unique = list(dict.fromkeys(requests))
        self.calls.append(unique)
        for request in unique:
            if request.text not in self.fail_on:
                yield request, tone_burst(request)
        if failed := [r.text for r in unique if r.text in self.fail_on]:
            raise BuildError("\n".join(f'speech engine failed on "{text}"' for text in failed))


def clip_samples(text: str, rate_wpm: int) -> int:
    """The fake clip's length: 60 ms per character at 170 words per minute, scaled by rate."""
    return max(1, round(len(text) * 0.060 * SAMPLE_RATE * 170 / rate_wpm))


def tone_burst(request: SpeechRequest) -> Clip:
    """A 16-bit-exact tone whose first and last samples are loud, like a trimmed clip."""
    n = clip_samples(request.text, request.rate_wpm)
    seed = hashlib.sha256(f"{request.voice}|{request.text}".encode()).digest()
    frequency = 150 + seed[0]  # Hz
    t = np.arange(n) / SAMPLE_RATE
    envelope = 0.3 + 0.7 * np.sin(np.pi * (np.arange(n) + 0.5) / n)
    wave = 0.5 * envelope * np.cos(2 * np.pi * frequency * t)
    wave[0] = wave[-1] = 0.25  # onset and end exactly at the clip's edges
    return (np.round(wave * 32768) / 32768).astype(np.float32)
