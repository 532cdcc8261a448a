"""`python -m coachtrack`, and the `coachtrack` command: Ctrl-C is met from the start."""

from __future__ import annotations

import sys


def main() -> None:
    """Import the CLI (0.1 to 0.3 s) and run it; Ctrl-C during the imports is no traceback."""
    try:
        from coachtrack.cli import main as run
    except KeyboardInterrupt:  # nothing was started yet
        from coachtrack.errors import INTERRUPTED

        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
