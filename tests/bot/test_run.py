"""`techbot run` as a process: it answers health checks while its NLU boots, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from nlu.commands import free_port
from nlu.project import RASA_VENV, model_path

TECHBOT = Path(sys.executable).parent / "techbot"
pytestmark = [pytest.mark.rasa, pytest.mark.slow]


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return None


def _rasa_processes(port: int) -> list[str]:
    found = subprocess.run(["pgrep", "-af", f"rasa.*--port {port}"], capture_output=True,
                           text=True, check=False).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


@contextmanager
def _running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """Run `techbot run` with a local NLU server to boot and Telegram off; kill it if left."""
    if not (RASA_VENV / "bin" / "rasa").exists() or not model_path().exists():
        pytest.skip("no Rasa environment or trained model: run `make model` (make test does)")
    port, nlu_port = free_port(), free_port()
    env = {**os.environ, "TECHBOT_DATA_DIR": str(tmp_path), "TECHBOT_API__PORT": str(port),
           "TECHBOT_API__TOKEN": "run-test-token-0123456789", "TECHBOT_NLU__URL": "",
           "TECHBOT_NLU__LOCAL_PORT": str(nlu_port), "TECHBOT_TELEGRAM__TOKEN": "",
           "TECHBOT_DATABASE__URL": ""}
    service = subprocess.Popen([str(TECHBOT), "run"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        yield service, port, nlu_port
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


def _stop_cleanly(service: subprocess.Popen[str], nlu_port: int) -> None:
    """Send SIGTERM: exit 0 within 10 s, no traceback, no NLU server left behind."""
    service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=10) == 0
    output = service.stdout.read() if service.stdout else ""
    assert "Traceback" not in output, output
    time.sleep(1)
    assert _rasa_processes(nlu_port) == [], "the NLU server outlived the service"


# From once techbot's own code runs (the interpreter's first ~0.2 s still end by the default
# handler, with nothing started) to serving while the NLU server boots.
@pytest.mark.parametrize("after", [0.3, 0.6, 0.9, 1.5, 2.5, 5.0])
def test_a_stop_at_any_moment_of_the_start_exits_0_and_leaves_nothing(
        tmp_path: Path, after: float) -> None:
    with _running(tmp_path) as (service, _port, nlu_port):
        time.sleep(after)
        _stop_cleanly(service, nlu_port)


def test_health_answers_while_the_nlu_boots_and_sigterm_ends_it_all(tmp_path: Path) -> None:
    with _running(tmp_path) as (service, port, nlu_port):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        health = None
        while health is None and time.monotonic() < deadline:
            health = _get(f"{base}/healthz")
            time.sleep(0.1)
        assert health is not None and health.json()["status"] == "ok"
        # Rasa needs tens of seconds to load the model: the service answered long before.
        ready = _get(f"{base}/readyz")
        assert ready is not None and ready.status_code == 503, ready
        assert ready.json()["nlu"] == "not ready" and ready.json()["database"] == "ok"
        while time.monotonic() < deadline + 180:
            ready = _get(f"{base}/readyz")
            if ready is not None and ready.status_code == 200:
                break
            time.sleep(1)
        assert ready is not None and ready.status_code == 200, ready.text if ready else None
        assert _rasa_processes(nlu_port), "the local NLU server should be running"
        _stop_cleanly(service, nlu_port)
