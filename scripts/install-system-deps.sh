#!/usr/bin/env bash
# Make espeak-ng and ffmpeg available: Debian packages where we can install them,
# otherwise the PyPI wheels (espeakng-loader, imageio-ffmpeg) into the given venv.
set -euo pipefail
venv_pip="${1:-}"

have() { command -v "$1" >/dev/null 2>&1; }
have_espeak_lib() { ldconfig -p 2>/dev/null | grep -q 'libespeak-ng\.so'; }

if have ffmpeg && have ffprobe && have espeak-ng && have_espeak_lib; then
    exit 0
fi

if have apt-get && [ "$(id -u)" = 0 ]; then
    echo "coachtrack: installing espeak-ng and ffmpeg from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends espeak-ng ffmpeg >/dev/null; then
        exit 0
    fi
    echo "coachtrack: apt-get failed; falling back to the PyPI wheels" >&2
elif have apt-get && have sudo && sudo -n true 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    if sudo -n apt-get update -qq && sudo -n apt-get install -y -qq --no-install-recommends espeak-ng ffmpeg >/dev/null; then
        exit 0
    fi
fi

if [ -n "$venv_pip" ]; then
    echo "coachtrack: installing the espeakng-loader and imageio-ffmpeg wheels" >&2
    "$venv_pip" install -q espeakng-loader imageio-ffmpeg
    exit 0
fi
echo "coachtrack: could not install espeak-ng and ffmpeg; install them (apt-get install espeak-ng ffmpeg) or pip install 'coachtrack[wheels]'" >&2
exit 1
