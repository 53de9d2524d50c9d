"""The watchdog in front of the NLU server: a SIGKILLed service leaves no server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nlu.project import NLU_DIR

STARTER = """
import subprocess, sys, os, time
child = subprocess.Popen([sys.executable, sys.argv[1], str(os.getpid()), "sleep", "120"])
print(child.pid, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    """Say whether the process runs (a zombie waiting for its parent does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_command_ends_when_its_starter_is_killed() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(NLU_DIR / "watchdog.py")],
                               stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    watchdog = int(starter.stdout.readline())
    deadline = time.monotonic() + 10
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        for task in Path(f"/proc/{watchdog}/task").glob("*/children"):
            children += [int(pid) for pid in task.read_text().split()]
        time.sleep(0.05)
    assert children, "the watchdog did not start its command"
    os.kill(starter.pid, signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 10
    while (alive(watchdog) or alive(children[0])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(children[0]) and not alive(watchdog)


def test_it_passes_sigterm_on_and_returns_the_exit_code() -> None:
    watchdog = subprocess.Popen([sys.executable, str(NLU_DIR / "watchdog.py"),
                                 str(os.getpid()), "sleep", "120"])
    time.sleep(0.5)
    watchdog.send_signal(signal.SIGTERM)
    assert watchdog.wait(timeout=10) == -signal.SIGTERM
