"""SIGKILL in the middle of a storm of 2,000 pushes, while the Bot API fails 10 % of the sends.

The real service (`techbot run`, its own process) decides 2,000 rating requests on its own
scheduler tick and sends them to a fake Bot API that answers 5 % of the sends 429 (in bursts,
with retry_after, as Telegram does) and 5 % 500. The test SIGKILLs the service mid-storm,
restarts it, and counts the messages each chat received on the Bot API's side.

Telegram has no idempotency key, so no sender can be exactly-once across a crash: a message the
Bot API accepted in the last milliseconds before the kill, whose "sent" the dead process never
committed, goes out again. The test reads the database right after the kill to find exactly
those messages, and asserts that they are the only ones that may arrive twice, and that
everything else arrives exactly once: nothing is lost, nothing else repeats.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from nlu.commands import free_port
from storage.db import transaction
from storage.models import Chat, Notification, NotificationAttempt, NotificationStatus
from tests.fake_bot_api import FakeBotApi, seed_finished_visits, serving

ORDERS = 2_000
SECOND_CHATS = 200  # orders with two chats: a retry must not repeat the chat that got it
MESSAGES = ORDERS + SECOND_CHATS
KILL_AT = 900  # the Bot API request during which the service is killed


def service_env(db_url: str, bot_api: str, data_dir: Path) -> dict[str, str]:
    """Return the environment of `techbot run` against the fake Bot API, fast and fault-ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECHBOT_")}
    env.update({
        "TECHBOT_DATABASE__URL": db_url, "TECHBOT_DATA_DIR": str(data_dir),
        "TECHBOT_API__TOKEN": "storm-api-token-0123456789", "TECHBOT_API__PORT": str(free_port()),
        "TECHBOT_TELEGRAM__TOKEN": "1:storm-token-0123456789",
        "TECHBOT_TELEGRAM__BASE_URL": bot_api,
        "TECHBOT_TELEGRAM__API_REQUESTS_PER_SECOND": "0",
        "TECHBOT_NLU__URL": "http://127.0.0.1:9",  # nobody writes: no NLU needed
        "TECHBOT_SCHEDULER__TICK_SECONDS": "0.5",
        "TECHBOT_PUSHES__SEND_RATE_PER_SECOND": "400",
        "TECHBOT_PUSHES__LEASE_SECONDS": "2",
        "TECHBOT_PUSHES__MAX_ATTEMPTS": "30",
        "TECHBOT_PUSHES__QUIET_HOURS_START": "00:00",  # the test may run at night
        "TECHBOT_PUSHES__QUIET_HOURS_END": "00:00",
    })
    return env


def start_service(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `techbot run` in its own process."""
    techbot = Path(sys.executable).with_name("techbot")
    with log.open("ab") as out:
        return subprocess.Popen([str(techbot), "run"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def confirmed_chats(session: Session) -> set[int]:
    """Return the chats whose push the database records as delivered."""
    sent = set(session.scalars(select(Chat.telegram_chat_id).join(
        Notification, Notification.order_id == Chat.order_id).where(
        Notification.status == NotificationStatus.SENT)))
    partly = {int(key.removeprefix("tg:")) for key in session.scalars(
        select(NotificationAttempt.chat_key).where(NotificationAttempt.outcome == "delivered"))
        if key}
    return {c for c in sent if c is not None} | partly


@pytest.mark.timeout(300)
def test_a_killed_service_loses_no_push_and_repeats_only_the_unconfirmed(
    db_url: str, sessions_of: sessionmaker[Session], tmp_path: Path
) -> None:
    sessions = sessions_of
    with transaction(sessions) as session:
        seed_finished_visits(session, orders=ORDERS, now=datetime.now(UTC),
                             second_chats=SECOND_CHATS)
    api = FakeBotApi(server_errors=0.05, burst_every=200, burst_length=10)
    killed = threading.Event()
    with serving(api) as url:
        env = service_env(db_url, url, tmp_path)
        log = tmp_path / "service.log"
        first = start_service(env, log)

        def kill_mid_storm(request: int) -> bool:
            if request == KILL_AT:
                os.kill(first.pid, signal.SIGKILL)
                killed.set()
            return killed.is_set()  # what the dead process still had on the wire is lost

        api.before_send = kill_mid_storm
        try:
            assert killed.wait(timeout=120), f"the storm never reached {KILL_AT} sends"
            first.wait(timeout=10)
            time.sleep(0.2)
            accepted_before = set(api.delivered())
            with transaction(sessions) as session:
                unconfirmed = accepted_before - confirmed_chats(session)
            api.before_send = None
            second = start_service(env, log)
            try:
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    assert second.poll() is None, log.read_text()[-3000:]
                    with transaction(sessions) as session:
                        statuses = {s: session.query(Notification).filter_by(status=s).count()
                                    for s in NotificationStatus}
                    if statuses[NotificationStatus.PENDING] == 0:
                        break
                    time.sleep(0.3)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
    delivered = api.delivered()
    expected = set(range(1, ORDERS + 1)) | {c + 10**6 for c in range(1, SECOND_CHATS + 1)}
    repeated = {chat: n for chat, n in delivered.items() if n > 1}
    print(f"\npush storm on {db_url.split(':')[0]}: {MESSAGES} messages, killed at send "
          f"{KILL_AT} with {len(accepted_before)} accepted; refused {api.refused[429]} x 429, "
          f"{api.refused[500]} x 500; accepted but unconfirmed at the kill: {len(unconfirmed)};"
          f" delivered twice: {len(repeated)}")
    assert set(delivered) == expected, f"a push was lost: {statuses}"
    assert set(repeated) <= unconfirmed, "a push the database had confirmed was sent again"
    assert all(n == 2 for n in repeated.values())
    assert statuses[NotificationStatus.SENT] == ORDERS, statuses
    assert len(unconfirmed) <= 60  # at most the sends in flight at once (one claimed batch)
    assert api.refused[429] > 0 and api.refused[500] > 0  # the faults really happened
    assert len(accepted_before) < MESSAGES  # and the kill was mid-storm
