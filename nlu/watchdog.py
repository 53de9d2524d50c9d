"""Run a command and stop it when the process that started this one dies, even by SIGKILL.

Run by the Rasa environment's Python in front of `rasa run`: a service killed with SIGKILL
cannot stop its NLU server, which would keep its port and ~600 MB. (PR_SET_PDEATHSIG fires when
the starting *thread* ends, and the service starts the server from a worker thread.)
Usage: python watchdog.py <parent pid> <command> [args...]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType


def main(argv: list[str]) -> int:
    """Start the command, forward SIGTERM/SIGINT, and end it when the parent is gone."""
    parent = int(argv[0])
    child = subprocess.Popen(argv[1:])  # noqa: S603 - the caller's own command

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while child.poll() is None:
        if os.getppid() != parent:  # re-parented: the service died without stopping us
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
            break
        time.sleep(0.5)
    code = child.wait()
    if code < 0:  # the command died of a signal: so do we, so that our parent sees which
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
