"""Find the external programs and libraries coachtrack needs: ffmpeg, ffprobe, libespeak-ng.

Each is taken from the system first, then from the optional PyPI wheels
(`pip install 'coachtrack[wheels]'`), and a clear BuildError says what to
install when neither has it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil

from coachtrack.errors import BuildError, UserError

ENCODER_ENV = "COACHTRACK_ENCODER"  # "lame" (the default) or "ffmpeg", for MP3

_INSTALL_FFMPEG = (
    "install it with `apt-get install ffmpeg` (or your system's package manager), "
    "or `pip install 'coachtrack[wheels]'`"
)
_INSTALL_ESPEAK = (
    "install it with `apt-get install espeak-ng` (or your system's package manager), "
    "or `pip install 'coachtrack[wheels]'`"
)


@functools.cache
def ffmpeg_path() -> str:
    """The ffmpeg executable: the system's on PATH, else the imageio-ffmpeg wheel's."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        pass
    else:
        try:
            return str(imageio_ffmpeg.get_ffmpeg_exe())
        except RuntimeError:  # the wheel is there but its binary is not
            pass
    raise BuildError(f"ffmpeg not found: {_INSTALL_FFMPEG}")


@functools.cache
def ffprobe_path() -> str | None:
    """The ffprobe executable on PATH, or None (the imageio-ffmpeg wheel has none)."""
    return shutil.which("ffprobe")


@functools.cache
def _system_espeak() -> str | None:
    return ctypes.util.find_library("espeak-ng")


@functools.cache
def espeak_library() -> str:
    """What to pass to ctypes.CDLL to load libespeak-ng: the system's, else the wheel's."""
    system = _system_espeak()
    if system:
        return system
    try:
        import espeakng_loader
    except ImportError:
        raise BuildError(f"libespeak-ng not found: {_INSTALL_ESPEAK}") from None
    return str(espeakng_loader.get_library_path())


@functools.cache
def ensure_espeak() -> None:
    """Make sure pyttsx3's espeak driver will load libespeak-ng (and find its voice data)."""
    library = espeak_library()
    if library == _system_espeak():
        return  # pyttsx3 loads the system library by its soname
    import espeakng_loader

    # espeak-ng reads its data folder from ESPEAK_DATA_PATH (the folder itself
    # or its parent); the wheel's compiled-in default points at its build tree.
    get_data_path = getattr(espeakng_loader, "get_data_path", None)
    if get_data_path is not None:
        os.environ.setdefault("ESPEAK_DATA_PATH", str(get_data_path()))
    # pyttsx3's _espeak opens "libespeak-ng.so.1" by name; the wheel's library
    # has that soname, so once it is loaded here the dynamic loader hands it out.
    try:
        ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
    except OSError as error:
        raise BuildError(f"cannot load {library}: {error}; {_INSTALL_ESPEAK}") from None


def mp3_encoder() -> str:
    """Which encoder writes MP3 (`COACHTRACK_ENCODER`): "lame" or "ffmpeg"; a UserError else."""
    encoder = os.environ.get(ENCODER_ENV, "lame")
    if encoder not in ("lame", "ffmpeg"):
        raise UserError(f"{ENCODER_ENV}={encoder!r}: expected 'lame' or 'ffmpeg'")
    return encoder
