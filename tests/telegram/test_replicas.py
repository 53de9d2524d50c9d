"""Three `techbot run` replicas on one PostgreSQL: one bot-wide send rate, a leader that dies."""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from nlu.commands import free_port
from storage.db import transaction
from storage.models import Notification, NotificationStatus
from tests.fake_bot_api import FakeBotApi, seed_finished_visits, serving
from tests.telegram.test_push_storm import confirmed_chats, service_env, start_service

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
REPLICAS = 3
PUSHES = 3_000
KILL_AFTER = 1_000  # accepted sends before the sending replica is killed


def leader_of(ports: dict[int, int]) -> int | None:
    """Return the pid of the replica whose /metrics says it sends, if one does."""
    for pid, port in ports.items():
        try:
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            continue
        if re.search(r"^techbot_sender_leader 1\.0$", metrics, re.M):
            return pid
    return None


@pytest.mark.timeout(420)
def test_three_replicas_send_at_one_rate_and_a_killed_leader_is_replaced(
    db_url: str, sessions_of: sessionmaker[Session], tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database; SQLite is one process's")
    with transaction(sessions_of) as session:
        seed_finished_visits(session, orders=PUSHES, now=datetime.now(UTC))
    api = FakeBotApi(limit_per_second=30, per_chat_seconds=1.0)
    with serving(api) as url:
        replicas, ports = [], {}
        for n in range(REPLICAS):
            env = {**service_env(db_url, url, tmp_path / f"r{n}"),
                   "TECHBOT_API__PORT": str(free_port()),
                   # Telegram's own limits: the bot's rate is what the test is about.
                   "TECHBOT_PUSHES__SEND_RATE_PER_SECOND": "29",
                   "TECHBOT_TELEGRAM__API_REQUESTS_PER_SECOND": "30",
                   "TECHBOT_PUSHES__LEASE_SECONDS": "10"}
            (tmp_path / f"r{n}").mkdir()
            replica = start_service(env, tmp_path / f"r{n}" / "service.log")
            replicas.append(replica)
            ports[replica.pid] = int(env["TECHBOT_API__PORT"])
        try:
            deadline = time.monotonic() + 120
            while len(api.accepted) < KILL_AFTER and time.monotonic() < deadline:
                time.sleep(0.2)
            leader = leader_of(ports)
            assert leader is not None, "no replica says it sends"
            os.kill(leader, signal.SIGKILL)
            killed_at = time.monotonic()
            accepted_at_kill = len(api.accepted)
            time.sleep(0.5)
            with transaction(sessions_of) as session:
                unconfirmed = set(api.delivered()) - confirmed_chats(session)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                with transaction(sessions_of) as session:
                    pending = session.query(Notification).filter_by(
                        status=NotificationStatus.PENDING).count()
                if pending == 0:
                    break
                time.sleep(0.5)
            resumed = next(at for at, _ in api.accepted[accepted_at_kill:] if at > killed_at)
            successor = leader_of({p: port for p, port in ports.items() if p != leader})
        finally:
            for replica in replicas:
                if replica.poll() is None:
                    replica.send_signal(signal.SIGTERM)
            for replica in replicas:
                replica.wait(timeout=30)
    first = api.accepted[0][0]
    late_429 = [at for at in api.refused_at if at - first > 1.0]
    delivered = api.delivered()
    repeated = {chat: n for chat, n in delivered.items() if n > 1}
    times = [at for at, _ in api.accepted]
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(f"\n{REPLICAS} replicas, {PUSHES} pushes: {api.refused[429]} x 429 "
          f"({len(late_429)} after the first second), {rate:.1f} sends/s overall, "
          f"leader killed after {accepted_at_kill} sends, sending resumed after "
          f"{resumed - killed_at:.1f} s by pid {successor}, {len(repeated)} repeats "
          f"({len(unconfirmed)} unconfirmed at the kill)")
    assert set(delivered) == set(range(1, PUSHES + 1))  # every push arrived
    assert late_429 == []  # one send rate for the bot, whatever the number of replicas
    assert set(repeated) <= unconfirmed  # at-least-once: only what the kill left unrecorded
    assert resumed - killed_at < 5.0  # another replica took over within the poll
    assert successor is not None and successor != leader
