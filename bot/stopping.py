"""A stop before anything has started: the process ends at once, cleanly, with exit 0."""

from __future__ import annotations

from types import FrameType


def stop_before_start(_signal: int, _frame: FrameType | None) -> None:
    """End the command at once and cleanly: nothing has started yet that needs stopping."""
    raise SystemExit(0)
