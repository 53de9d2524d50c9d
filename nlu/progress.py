"""A line on stderr while something slow runs: what, for how long, how long it usually takes."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

log = logging.getLogger(__name__)

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
CLEAR_LINE = "\r\033[K"
# Rasa's training hooks log each component as it starts: the step the training is at.
TRAINING_STEP = re.compile(r"Starting to train component '([^']+)'")


class ProgressLine:
    """Keep one spinner line with the elapsed time on a terminal; log start and end elsewhere.

    On a terminal the line is redrawn a few times a second; on a pipe or in a service's log
    only the start and the outcome are logged, so nothing floods a collector.
    """

    def __init__(self, doing: str, *, expected: str, log_path: Path,
                 detail: Callable[[], str] | None = None, stream: IO[str] | None = None,
                 interval: float = 0.2) -> None:
        self.doing, self.expected, self.log_path = doing, expected, log_path
        self.detail = detail or (lambda: "")
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.live = self.stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> ProgressLine:
        self._started = time.monotonic()
        log.info("%s (%s); log: %s", self.doing, self.expected, self.log_path)
        if self.live:
            self._thread = threading.Thread(target=self._draw, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        seconds = self.elapsed()
        if kind is None:
            log.info("%s: done in %.0f s", self.doing, seconds)
            self._write(f"{CLEAR_LINE}✓ {self.doing}: done in {seconds:.0f} s\n")
        else:
            log.error("%s failed after %.0f s; log: %s", self.doing, seconds, self.log_path)
            self._write(f"{CLEAR_LINE}✗ {self.doing} failed after {seconds:.0f} s; "
                        f"log: {self.log_path}\n")

    def elapsed(self) -> float:
        """Return the seconds since the start."""
        return time.monotonic() - self._started

    def line(self, frame: int) -> str:
        """Return the line as drawn now: spinner, what, elapsed, the usual total, the step."""
        detail = self.detail()
        return (f"{SPINNER[frame % len(SPINNER)]} {self.doing}: {self.elapsed():.0f} s "
                f"({self.expected})" + (f" · {detail}" if detail else ""))

    def _draw(self) -> None:
        frame = 0
        while not self._stop.wait(self.interval if frame else 0):
            self._write(CLEAR_LINE + self.line(frame))
            frame += 1

    def _write(self, text: str) -> None:
        if not self.live:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away; the work goes on
            pass


def training_step(log_path: Path) -> str:
    """Return the component Rasa trains now and how many came before, read from its log."""
    try:
        with log_path.open("rb") as handle:
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    steps = TRAINING_STEP.findall(text)
    if not steps:
        return "preparing"
    return f"step {len(steps)}: {steps[-1]}"
