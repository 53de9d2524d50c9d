"""SIGTERM at any moment of a busy `techbot run`: out within 10 s, exit 0, no row left claimed."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from storage.models import Notification, NotificationStatus
from tests.fake_bot_api import FakeBotApi, seed_finished_visits, serving
from tests.telegram.test_push_storm import service_env, start_service

pytestmark = [pytest.mark.slow]
STOPS = 50


@pytest.mark.timeout(900)
def test_fifty_sigterms_at_random_moments_each_end_cleanly(
    db_url: str, sessions_of: sessionmaker[Session], tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the replicas' database; SQLite's start and stop: tests/bot/test_run.py")
    with transaction(sessions_of) as session:
        seed_finished_visits(session, orders=4_000, now=datetime.now(UTC))
    chance = random.Random(50)
    api = FakeBotApi(limit_per_second=30, server_errors=0.05)
    stops: list[float] = []
    with serving(api) as url:
        env = {**service_env(db_url, url, tmp_path),
               "TECHBOT_PUSHES__SEND_RATE_PER_SECOND": "29",
               "TECHBOT_PUSHES__LEASE_SECONDS": "60"}
        log = tmp_path / "service.log"
        for n in range(STOPS):
            service = start_service(env, log)
            time.sleep(chance.uniform(0.2, 3.0))  # starting, mid-tick, mid-send
            asked = time.monotonic()
            service.send_signal(signal.SIGTERM)
            try:
                code = service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.kill()
                raise AssertionError(f"stop {n} did not end in 15 s\n"
                                     f"{log.read_text()[-2000:]}") from None
            took = time.monotonic() - asked
            stops.append(took)
            assert code == 0, f"stop {n}: exit {code}\n{log.read_text()[-2000:]}"
            assert took < 10, f"stop {n} took {took:.1f} s"
            with transaction(sessions_of) as session:
                claimed = session.scalar(select(func.count()).select_from(Notification).where(
                    Notification.status == NotificationStatus.PENDING,
                    Notification.lease_until > datetime.now(UTC)))
            assert claimed == 0, f"stop {n} left {claimed} pushes claimed"
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    print(f"\n{STOPS} SIGTERMs: slowest stop {max(stops):.2f} s, median "
          f"{sorted(stops)[len(stops) // 2]:.2f} s; {len(api.accepted)} pushes sent meanwhile")
