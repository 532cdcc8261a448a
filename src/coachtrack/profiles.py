"""Built-in profiles: one frozen settings object per listening situation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from coachtrack.errors import UserError
from coachtrack.model import RangePick

IntroStyle = Literal["full", "short", "none"]
ChimeSet = Literal["bell", "soft-bell", "beeps"]
CountdownStyle = Literal["ticks", "spoken", "none"]
Farewell = Literal["well-done", "rest-well"]  # the track's last words


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything that differs between phone, bedside and gym tracks."""

    name: str
    description: str
    rate_wpm: int  # speech rate handed to the engine (espeak-ng speaks about 1.2 times as
    # many words as this: bedside 115 measures about 140 a minute over the shipped lines)
    range_pick: RangePick  # which length a hold range `A..B` takes
    intro: IntroStyle  # title, intro lines and equipment talk at the start
    number_steps: bool  # "Step 2: ..." (bedside goes straight to the title)
    safety_at_end: bool  # bedside says the safety note last, not first
    farewell: Farewell  # bedside sends the listener back to sleep rather than praise them
    chimes: ChimeSet
    countdown: CountdownStyle  # at the end of holds of 10 s or more
    breath_period_ms: int  # one breathing cue per period inside a hold
    time_cues: bool  # "Halfway.", "One minute left.", ... in long holds that have breathing cues
    loudness_lufs: float  # integrated loudness target (EBU R128)
    true_peak_dbtp: float  # true-peak ceiling of the encoded file
    bitrate_kbps: int  # MP3/AAC bitrate: small files for phones, cleaner peaks for speakers
    fade_in_ms: int  # gentle start of the whole track
    chime_lufs: float  # the loudest 400 ms of its chimes, K-weighted, against the target
    music_allowed: bool
    music_duck_db: float  # how far a music bed dips under every sound (voice, chime, count)
    music_level_db: float  # bed loudness where not ducked, relative to the loudness target
    # (the bed fills the holds, so it weighs in the integrated loudness: much quieter, and
    # the voice would have to be pushed past what the limiter can give to reach the target)
    first_speech_ms: int  # where the first line starts (after the start chime)
    gap_ms: int  # silence between two spoken lines
    chime_lead_ms: int  # end of speech -> onset of a hold's start chime (>= 300): a moment to
    # settle into the position just described before the hold is timed
    after_chime_ms: int  # onset of a hold's end chime -> next speech
    step_gap_ms: int  # extra silence before each new step or side
    cue_gap_ms: int  # least silence around a cue inside a hold
    tail_ms: int  # silence after the end chime, so it rings out


PHONE = Profile(
    name="phone",
    description="headphones, anywhere",
    rate_wpm=165,
    range_pick="middle",
    intro="full",
    number_steps=True,
    safety_at_end=False,
    farewell="well-done",
    chimes="bell",
    countdown="ticks",
    breath_period_ms=12_000,
    time_cues=True,
    loudness_lufs=-16.0,
    true_peak_dbtp=-1.5,
    bitrate_kbps=64,
    fade_in_ms=0,
    chime_lufs=-1.0,
    music_allowed=True,
    music_duck_db=8.0,
    music_level_db=-1.0,
    first_speech_ms=1_300,
    gap_ms=450,
    chime_lead_ms=1_000,
    after_chime_ms=900,
    step_gap_ms=900,
    cue_gap_ms=500,
    tail_ms=1_500,
)

BEDSIDE = Profile(
    name="bedside",
    description="night cramps, in bed, partner asleep",
    rate_wpm=115,
    range_pick="middle",
    intro="none",
    number_steps=False,
    safety_at_end=True,
    farewell="rest-well",
    chimes="soft-bell",
    countdown="none",
    breath_period_ms=15_000,
    time_cues=False,
    loudness_lufs=-26.0,
    true_peak_dbtp=-1.5,
    bitrate_kbps=64,
    fade_in_ms=2_000,
    chime_lufs=3.0,
    music_allowed=False,
    music_duck_db=0.0,
    music_level_db=-60.0,
    first_speech_ms=900,
    gap_ms=800,
    chime_lead_ms=1_500,
    after_chime_ms=1_400,
    step_gap_ms=1_400,
    cue_gap_ms=800,
    tail_ms=2_500,
)

GYM = Profile(
    name="gym",
    description="a room's speakers, warm-up",
    rate_wpm=190,
    range_pick="shortest",
    intro="short",
    number_steps=True,
    safety_at_end=False,
    farewell="well-done",
    chimes="beeps",
    countdown="spoken",
    breath_period_ms=10_000,
    time_cues=True,
    loudness_lufs=-14.0,
    true_peak_dbtp=-1.0,
    bitrate_kbps=96,
    fade_in_ms=0,
    chime_lufs=3.5,
    music_allowed=True,
    music_duck_db=10.0,
    music_level_db=-0.5,
    first_speech_ms=700,
    gap_ms=300,
    chime_lead_ms=300,
    after_chime_ms=450,
    step_gap_ms=500,
    cue_gap_ms=400,
    tail_ms=1_000,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (PHONE, BEDSIDE, GYM)}


def get_profile(name: str) -> Profile:
    """The built-in profile called `name`, or a usage error listing the choices."""
    try:
        return PROFILES[name]
    except KeyError:
        choices = ", ".join(PROFILES)
        raise UserError(f"--profile: unknown profile {name!r}; choose one of: {choices}") from None
