#!/usr/bin/env bash
# Make Debian's chromium available for the browser tests (tests/test_page.py).
# Idempotent: does nothing when `chromium` is already on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "coachtrack: installing chromium from Debian packages" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "coachtrack: installing chromium from Debian packages (sudo)" >&2
    sudo -n apt-get update -qq && sudo -n apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
    echo "coachtrack: chromium is missing and cannot be installed here (apt-get install chromium)" >&2
    exit 1
fi

command -v chromium >/dev/null 2>&1
