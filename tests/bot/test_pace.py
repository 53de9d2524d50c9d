"""The bot's send pace: one for every replica on PostgreSQL, replies before pushes, 429 for all."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.pace import SendLimiter, SharedPace, pace_for
from storage.db import transaction
from storage.models import SendPace
from storage.pacing import (
    Taken,
    earlier_pending,
    finish_update,
    forget_paces,
    forget_updates,
    reserve_send,
    take_update,
)


def postgres_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the shared pace is PostgreSQL's; SQLite is one process's")


def test_sqlite_keeps_its_pace_in_memory(engine: Engine) -> None:
    pace = pace_for(engine, per_second=30, per_chat_seconds=1)
    assert isinstance(pace, SharedPace if engine.dialect.name == "postgresql" else SendLimiter)


def test_reservations_are_spaced_for_the_bot_and_for_each_chat(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    postgres_only(engine)
    with transaction(sessions) as session:
        waits = [reserve_send(session, chat_key=f"tg:{n}", interval=0.1, per_chat=1.0)
                 for n in range(5)]
    assert all(r.granted for r in waits)
    # Five chats, one after the other at the bot's interval (the clock moves a little).
    for n, reservation in enumerate(waits):
        assert reservation.wait == pytest.approx(0.1 * n, abs=0.08)
    with transaction(sessions) as session:
        again = reserve_send(session, chat_key="tg:0", interval=0.1, per_chat=1.0)
    # The chat's own second is not over: look again then, without taking the bot's moment.
    assert not again.granted and 0.8 < again.wait <= 1.0
    with transaction(sessions) as session:
        other = reserve_send(session, chat_key="tg:9", interval=0.1, per_chat=1.0)
    assert other.granted and other.wait == pytest.approx(0.5, abs=0.1)


def test_a_push_waits_while_replies_are_queued(engine: Engine,
                                               sessions: sessionmaker[Session]) -> None:
    postgres_only(engine)
    with transaction(sessions) as session:
        for n in range(10):  # ten replies queued: a second of the bot's sends taken
            reserve_send(session, chat_key=f"tg:{n}", interval=0.1, per_chat=1.0)
        push = reserve_send(session, chat_key="tg:99", interval=0.1, per_chat=1.0,
                            only_if_idle=True)
        reply = reserve_send(session, chat_key="tg:98", interval=0.1, per_chat=1.0)
    assert not push.granted and 0.8 < push.wait <= 1.0
    assert reply.granted and reply.wait == pytest.approx(1.0, abs=0.1)
    with transaction(sessions) as session:  # the push took nothing from the chat either
        assert session.get(SendPace, "tg:99") is not None
        assert session.get(SendPace, "tg:99").next_at <= datetime.now(UTC)  # type: ignore[union-attr]


def test_three_replicas_together_send_at_the_bot_rate(engine: Engine) -> None:
    """Three paces (as three replicas would hold) on one database: 28 a second, not 84."""
    postgres_only(engine)
    paces = [SharedPace(engine, per_second=28, per_chat_seconds=1.0) for _ in range(3)]
    sent: list[float] = []

    async def replica(pace: SharedPace, first: int) -> None:
        async def one(chat: int) -> None:
            await pace.wait(chat)
            sent.append(time.monotonic())
        await asyncio.gather(*(one(chat) for chat in range(first, first + 30)))

    started = time.monotonic()
    asyncio.run(_all(replica(p, n * 100) for n, p in enumerate(paces)))
    took = time.monotonic() - started
    assert len(sent) == 90
    assert took > 3.0  # 90 sends at 28 a second
    # The first second's 90 reservations at once queue in the threads (a few land late and
    # bunch); after it, threads and sleeps add milliseconds, which the default's margin holds.
    window = sorted(t for t in sent if t > started + 1.0)
    most_in_a_second = max(sum(1 for t in window if s <= t < s + 1.0) for s in window)
    assert most_in_a_second <= 30


def test_a_429_on_one_replica_holds_the_others(engine: Engine) -> None:
    postgres_only(engine)
    first, second = (SharedPace(engine, per_second=30, per_chat_seconds=1.0) for _ in range(2))

    async def scenario() -> float:
        await first.pause(1.0)
        started = time.monotonic()
        await second.wait("tg:5")
        return time.monotonic() - started

    assert 0.9 < asyncio.run(scenario()) < 1.5


def test_ended_chat_paces_are_forgotten(engine: Engine, sessions: sessionmaker[Session]
                                        ) -> None:
    postgres_only(engine)
    with transaction(sessions) as session:
        reserve_send(session, chat_key="tg:1", interval=0.01, per_chat=0.0)
        session.execute(SendPace.__table__.update().where(SendPace.key == "tg:1").values(
            next_at=datetime.now(UTC) - timedelta(minutes=5)))
        assert forget_paces(session) == 1
        assert session.scalar(select(func.count()).select_from(SendPace)) == 1  # the bot's


def test_updates_are_taken_once_and_wait_for_the_chat_s_earlier_one(
        sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    fresh = now - timedelta(seconds=20)
    with transaction(sessions) as session:
        def take(chat: str, update: int, at: datetime = now) -> Taken:
            return take_update(session, chat_key=chat, update_id=update, now=at,
                               stale_before=at - timedelta(seconds=20))

        assert take("tg:1", 10) is Taken.TAKEN
        assert take("tg:1", 10) is Taken.BUSY  # sent again while still being answered
        assert take("tg:1", 11) is Taken.TAKEN
        assert take("tg:2", 9) is Taken.TAKEN
    with transaction(sessions) as session:
        since = now - timedelta(minutes=2)
        assert earlier_pending(session, chat_key="tg:1", update_id=11, since=since)
        assert not earlier_pending(session, chat_key="tg:1", update_id=10, since=since)
        assert not earlier_pending(session, chat_key="tg:2", update_id=20, since=now
                                   + timedelta(seconds=1))  # a dead replica's: not waited for
        finish_update(session, chat_key="tg:1", update_id=10, now=now)
        assert not earlier_pending(session, chat_key="tg:1", update_id=11, since=since)
        assert take_update(session, chat_key="tg:1", update_id=10, now=now,
                           stale_before=fresh) is Taken.DONE  # answered: never again
        assert forget_updates(session, before=now + timedelta(seconds=1)) == 3


def test_an_update_whose_replica_died_is_taken_over_once(
        sessions: sessionmaker[Session]) -> None:
    taken_at = datetime.now(UTC) - timedelta(seconds=30)
    with transaction(sessions) as session:
        assert take_update(session, chat_key="tg:1", update_id=5, now=taken_at,
                           stale_before=taken_at) is Taken.TAKEN
    now = taken_at + timedelta(seconds=30)
    with transaction(sessions) as session:  # Telegram's next delivery, after the taker's time
        assert take_update(session, chat_key="tg:1", update_id=5, now=now,
                           stale_before=now - timedelta(seconds=20)) is Taken.TAKEN
        # Another replica's delivery right after: the new taker has it now.
        assert take_update(session, chat_key="tg:1", update_id=5, now=now,
                           stale_before=now - timedelta(seconds=20)) is Taken.BUSY


async def _all(coroutines: object) -> None:
    await asyncio.gather(*coroutines)  # type: ignore[misc]
