"""Runs the stages for each routine: script, speech, timeline, mix, export."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from coachtrack import SAMPLE_RATE, export, mastering, mixer, sounds
from coachtrack.model import Routine
from coachtrack.phrases import phrasebook
from coachtrack.profiles import Profile
from coachtrack.script import Script, make_script
from coachtrack.speech import SpeechCache, SpeechEngine, SpeechRequest
from coachtrack.timeline import Timeline, build_timeline

Audio = npt.NDArray[np.float32]
Format = Literal["mp3", "m4a", "wav"]
GENRE = "Fitness"
Progress = Callable[[str, int, int], None]  # stage, done, total


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """How `build` renders tracks, beside the routines and profiles."""

    out_dir: Path = Path("audio_out")
    fmt: Format = "mp3"
    voice: str | None = None
    jobs: int = 2


@dataclass(frozen=True, slots=True)
class Planned:
    """One routine in one profile, timed, with every sound it plays."""

    routine: Routine
    profile: Profile
    script: Script
    timeline: Timeline
    clips: Mapping[str, Audio]
    sounds: Mapping[str, Audio]


class Studio:
    """Speech engine and cache, shared by every track of one run."""

    def __init__(self, engine: SpeechEngine, cache: SpeechCache, *, voice: str | None = None,
                 jobs: int = 2) -> None:  # fmt: skip
        self.engine = engine
        self.cache = cache
        self.voice = voice
        self.jobs = jobs

    def voice_for(self, routine: Routine) -> str:
        """The voice a routine is spoken in: the one asked for, or its language's."""
        return self.voice or self.engine.voice_for(routine.language)

    def plan(self, routine: Routine, profile: Profile) -> Planned:
        """Script the routine, speak every line it may need, and place it all in time."""
        script = make_script(routine, profile, phrasebook(routine.language))
        voice = self.voice_for(routine)
        requests = {text: SpeechRequest(text, voice, profile.rate_wpm) for text in script.texts()}
        spoken = self.cache.clips(requests.values(), jobs=self.jobs)
        clips = {text: spoken[request] for text, request in requests.items()}
        sound_set = sounds.sound_set(profile.chimes, SAMPLE_RATE)
        timeline = build_timeline(
            script,
            {text: len(clip) for text, clip in clips.items()},
            {name: len(audio) for name, audio in sound_set.items()},
            SAMPLE_RATE,
        )
        return Planned(routine, profile, script, timeline, clips, sound_set)


def track_info(planned: Planned) -> export.TrackInfo:
    """Tags, chapters and transcript of a planned track."""
    timeline, routine = planned.timeline, planned.routine
    ms = timeline.to_ms
    comment = " ".join(
        part for part in (
            f"Source: {routine.source}." if routine.source else "",
            f"Safety: {routine.safety}" if routine.safety else "",
        ) if part
    )  # fmt: skip
    return export.TrackInfo(
        title=routine.title,
        album=planned.profile.name,
        genre=GENRE,
        comment=comment or routine.title,
        language=routine.language,
        duration_ms=ms(timeline.duration),
        chapters=tuple(export.Chapter(c.title, ms(c.start), ms(c.end)) for c in timeline.chapters),
        transcript=tuple((ms(e.start), e.text) for e in timeline.spoken() if e.text),
    )


def render(planned: Planned, path: Path, fmt: Format) -> None:
    """Mix, master and encode one planned track to `path`, with its LRC beside it."""
    mix = mixer.Mixer(planned.timeline, planned.clips, planned.sounds, planned.profile)
    mastered, result = mastering.master(mix, encoder_loss_db=export.LEVEL_LOSS_DB[fmt])
    info = track_info(planned)
    export.write_track(
        path,
        mixer.pcm_chunks(mastered, mixer.islands(planned.timeline), result.ceiling),
        n_samples=planned.timeline.duration,
        sample_rate=planned.timeline.sample_rate,
        info=info,
        fmt=fmt,
        bitrate_kbps=planned.profile.bitrate_kbps,
    )
    export.write_lrc(path.with_suffix(".lrc"), info)


def track_path(out_dir: Path, profile: Profile, routine: Routine, fmt: Format) -> Path:
    """Where `build` writes a routine's track: `OUT/PROFILE/ID.FORMAT`."""
    return out_dir / profile.name / f"{routine.id}.{fmt}"


def build_all(
    studio: Studio,
    routines: Sequence[Routine],
    profiles: Sequence[Profile],
    options: BuildOptions,
    progress: Progress | None = None,
) -> list[Path]:
    """Render every routine in every profile, and each profile folder's playlist."""
    written: list[Path] = []
    jobs = [(routine, profile) for profile in profiles for routine in routines]
    for done, (routine, profile) in enumerate(jobs):
        if progress:
            progress(f"{profile.name}/{routine.id}", done, len(jobs))
        path = track_path(options.out_dir, profile, routine, options.fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        render(studio.plan(routine, profile), path, options.fmt)
        written.append(path)
    for folder in sorted({p.parent for p in written}):
        export.write_playlist(folder)
    if progress:
        progress("done", len(jobs), len(jobs))
    return written
