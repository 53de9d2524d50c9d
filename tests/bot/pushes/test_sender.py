"""The sender: claims, retries after 429 and 5xx, blocked chats, two senders, partial failures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from bot.channels.base import Blocked, TryLater
from bot.pushes.sender import Sender
from bot.services import Services
from dialogues.model import Reply
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.models import Chat, Notification, NotificationAttempt
from storage.orders import get_order_by_id
from storage.outbox import enqueue
from tests.conftest import NOW
from tests.factories import make_order


@dataclass
class ScriptedChannel:
    """Answers each delivery from a script: 'ok', '429', '500' or 'blocked'."""

    script: list[str]
    prefix: str = "tg:"
    delivered: list[str] = field(default_factory=list)

    async def deliver(self, chat_key: str, telegram_chat_id: int | None,
                      replies: tuple[Reply, ...]) -> None:
        outcome = self.script.pop(0) if self.script else "ok"
        if outcome == "429":
            raise TryLater("429", after=7)
        if outcome == "500":
            raise TryLater("500")
        if outcome == "blocked":
            raise Blocked("blocked")
        self.delivered.append(chat_key)


@pytest.fixture
def one_push(services: Services) -> int:
    with transaction(services.sessions) as session:
        order = make_order(session)
        chat = ensure_chat(session, chat_key="tg:77", telegram_chat_id=77, now=NOW)
        link_chat(session, chat=chat, order=order)
        enqueue(session, order_id=order.id, kind="rating_request", dedupe_key="rating",
                payload={}, now=NOW)
        return order.id


def _row(services: Services) -> Notification:
    with transaction(services.sessions) as session:
        return session.query(Notification).one()


def test_429_with_retry_after_is_honoured(services: Services, one_push: int) -> None:
    clock = [NOW]
    services.clock = lambda: clock[0]
    channel = ScriptedChannel(["429"])
    sender = Sender(services, [channel])
    asyncio.run(sender.run_once())
    row = _row(services)
    assert (row.status, row.next_attempt_at) == ("pending", NOW + timedelta(seconds=7))
    clock[0] = NOW + timedelta(seconds=6)
    assert asyncio.run(sender.run_once()) == 0  # not before retry_after
    clock[0] = NOW + timedelta(seconds=7)
    asyncio.run(sender.run_once())
    assert (_row(services).status, channel.delivered) == ("sent", ["tg:77"])
    with transaction(services.sessions) as session:
        assert [a.outcome for a in session.query(NotificationAttempt).order_by(
            NotificationAttempt.id)] == ["retry", "sent"]


def test_server_errors_back_off_and_give_up_after_max_attempts(
    services: Services, one_push: int
) -> None:
    clock = [NOW]
    services.clock = lambda: clock[0]
    services.settings.pushes.max_attempts = 3
    sender = Sender(services, [ScriptedChannel(["500"] * 5)])
    for _ in range(3):
        asyncio.run(sender.run_once())
        clock[0] += timedelta(minutes=15)
    row = _row(services)
    assert (row.status, row.attempts) == ("failed", 3)


def test_a_blocked_chat_stops_pushes(services: Services, one_push: int) -> None:
    sender = Sender(services, [ScriptedChannel(["blocked"])])
    asyncio.run(sender.run_once())
    assert _row(services).status == "failed"
    with transaction(services.sessions) as session:
        assert session.query(Chat).one().unreachable
        enqueue(session, order_id=one_push, kind="reminder", dedupe_key="later", payload={},
                now=NOW)
    asyncio.run(sender.run_once())
    with transaction(services.sessions) as session:
        later = session.query(Notification).filter_by(dedupe_key="later").one()
        assert later.status == "held"  # nobody reachable: kept, not sent


def test_two_senders_on_one_database_send_each_push_once(services: Services) -> None:
    with transaction(services.sessions) as session:
        for i in range(40):
            order = make_order(session)
            chat = ensure_chat(session, chat_key=f"tg:{i}", telegram_chat_id=i, now=NOW)
            link_chat(session, chat=chat, order=order)
            enqueue(session, order_id=order.id, kind="rating_request", dedupe_key="rating",
                    payload={}, now=NOW)
    first, second = ScriptedChannel([]), ScriptedChannel([])

    async def both() -> None:
        a, b = Sender(services, [first]), Sender(services, [second])
        while await a.run_once() + await b.run_once():
            pass

    asyncio.run(both())
    delivered = first.delivered + second.delivered
    assert sorted(delivered) == sorted(f"tg:{i}" for i in range(40))


def test_a_retry_after_a_partial_failure_skips_the_chats_already_told(
    services: Services, one_push: int
) -> None:
    clock = [NOW]
    services.clock = lambda: clock[0]
    with transaction(services.sessions) as session:
        second = ensure_chat(session, chat_key="tg:78", telegram_chat_id=78, now=NOW)
        order = get_order_by_id(session, order_id=one_push)
        assert order is not None
        link_chat(session, chat=second, order=order)
    channel = ScriptedChannel(["ok", "500"])  # the first chat gets it, the second fails
    sender = Sender(services, [channel])
    asyncio.run(sender.run_once())
    assert _row(services).status == "pending"
    clock[0] += timedelta(minutes=15)
    asyncio.run(sender.run_once())
    assert _row(services).status == "sent"
    assert sorted(channel.delivered) == ["tg:77", "tg:78"]  # each chat exactly once
    with transaction(services.sessions) as session:
        assert [(a.outcome, a.chat_key) for a in session.query(NotificationAttempt).order_by(
            NotificationAttempt.id)] == [("delivered", "tg:77"), ("retry", None), ("sent", None)]


def test_a_push_every_chat_got_before_a_crash_is_only_marked_sent(
    services: Services, one_push: int
) -> None:
    with transaction(services.sessions) as session:
        row = session.query(Notification).one()
        session.add(NotificationAttempt(notification_id=row.id, outcome="delivered", at=NOW,
                                        chat_key="tg:77"))
    channel = ScriptedChannel([])
    asyncio.run(Sender(services, [channel]).run_once())
    assert (_row(services).status, channel.delivered) == ("sent", [])
