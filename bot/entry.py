"""The `techbot` command's first lines: a stop while `techbot run` still imports ends it cleanly."""

from __future__ import annotations

import signal
import sys

from bot.stopping import stop_before_start


def main() -> int:
    """Run `techbot`; for `run`, SIGTERM and SIGINT end the start-up with exit 0 from here on."""
    # Importing the command line (pydantic, yaml, ...) takes a good part of a second on a busy
    # machine; a process manager's stop in that time must not end in the default "killed".
    if sys.argv[1:2] == ["run"]:
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, stop_before_start)
    from bot.cli import main as command_line

    return command_line()
