"""User-facing errors: every problem at once, as `PATH:LINE:COL: key.path: message`."""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the user's input, located as precisely as we can."""

    path: str
    message: str
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    key: str | None = None  # e.g. "steps[2].do[1].hold"

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}:{self.col if self.col is not None else 1}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        # One problem, one line, whatever a value or a file name quoted in it holds.
        return " ".join(text.splitlines())


class UserError(Exception):
    """Bad input or usage: reported without a traceback, exit status 2."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(path="coachtrack", message=problems)]
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class BuildError(Exception):
    """A failure while building (engine, encoder, disk): exit status 1."""

    exit_code = 1


def cut(text: str, limit: int = 40) -> str:
    """Text short enough for a message, on one line."""
    one_line = " ".join(text.split()) if "\n" in text else text
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


INTERRUPTED = "coachtrack: interrupted; nothing half-written was left behind"
TERMINATED = "coachtrack: terminated; nothing half-written was left behind"
# SIGTERM (`kill PID`, a shutdown) and SIGHUP (the terminal closed, an SSH link dropped)
# stop a build as Ctrl-C (SIGINT) does: its clean-up runs, and no temporary file is left.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
STOPS = (signal.SIGINT, *STOP_SIGNALS)  # every signal a build stops on, cleaning up


def let_further_stops_pass() -> None:
    """From now on Ctrl-C and the stop signals do nothing: the clean-up of the first runs
    undisturbed (a SIGHUP reaches a build's workers together with the SIGINT it then sends
    them, which cut their clean-up short and left a temporary file).

    A handler that does nothing, not SIG_IGN: a signal already on its way when SIG_IGN is set
    raises "OSError: Signal 2 ignored due to race condition" where it lands.
    """
    for one in STOPS:
        signal.signal(one, _pass)


def _pass(signum: int, frame: object) -> None:
    """A stop signal while an earlier one is being dealt with: nothing more to do."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`, a shutdown), raised where Ctrl-C would be: the same clean-up runs."""
