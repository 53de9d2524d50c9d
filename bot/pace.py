"""Telegram's sending limits: about 30 messages a second per bot and one a second per chat.

One process keeps its pace in memory (SendLimiter); replicas on PostgreSQL share one
(SharedPace), so replies and pushes of every replica together stay under the bot's limit and
a 429 holds them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from storage.db import make_session_factory, transaction
from storage.pacing import forget_paces, pause_sends, reserve_send

log = logging.getLogger(__name__)
FORGET_EVERY = 1_000  # reservations between two clean-ups of chats' ended paces
LATE_SECONDS = 0.1  # a reserved moment missed by more than this is given up and reserved anew
MISSES_AT_MOST = 3  # then the message goes anyway: a process this busy sends little
PUSH_YIELDS_AT_MOST = 2.0  # seconds a push lets queued replies go first


class Pace(Protocol):
    """Say when a message may go out; hold every send after a 429."""

    async def wait(self, chat: int | str, *, only_if_idle: bool = False) -> None:
        """Return when a message to this chat may go out."""

    async def pause(self, seconds: float) -> None:
        """Hold every send for a while."""


class SendLimiter:
    """Space one process's sends so that neither the bot's nor a chat's limit is exceeded."""

    def __init__(self, *, per_second: float = 30, per_chat_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._per_chat = per_chat_seconds
        self._clock = clock
        self._next_slot = 0.0
        self._next_for_chat: dict[int | str, float] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat: int | str, *, only_if_idle: bool = False) -> None:
        """Return when a message to this chat may go out (one queue: idle or not, in order)."""
        async with self._lock:
            now = self._clock()
            at = max(now, self._next_slot, self._next_for_chat.get(chat, 0.0))
            self._next_slot = at + self._interval
            self._next_for_chat[chat] = at + self._per_chat
            if len(self._next_for_chat) > 10_000:  # forget chats whose pause is long over
                self._next_for_chat = {k: v for k, v in self._next_for_chat.items() if v > now}
        delay = at - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    async def pause(self, seconds: float) -> None:
        """Hold every send for a while (Telegram answered 429 with retry_after)."""
        self._next_slot = max(self._next_slot, self._clock() + seconds)


class ClockOffset:
    """Map the database's clock onto this process's, from the quickest recent round trip.

    A reservation's moment is the database's; sleeping it from when the answer arrived would
    add each call's own delay (threads, locks) and bunch sends that were spaced apart.
    """

    def __init__(self, refresh_seconds: float = 60.0) -> None:
        self.refresh = refresh_seconds
        self._offset = 0.0  # database epoch seconds minus local monotonic seconds
        self._trip = float("inf")
        self._at = 0.0

    def local(self, remote: float, before: float, after: float) -> float:
        """Return the local time of a database moment read between before and after."""
        trip = after - before
        if trip <= self._trip or after - self._at > self.refresh:
            self._offset, self._trip, self._at = remote - (before + after) / 2, trip, after
        return remote - self._offset


class SharedPace:
    """One pace for every replica, kept in PostgreSQL: one row for the bot, one per chat.

    Each send costs one short transaction (three statements on two rows). Should the
    database not answer, this process falls back to its own pace at a share of the rate
    rather than stop talking.
    """

    def __init__(self, engine: Engine, *, per_second: float = 30,
                 per_chat_seconds: float = 1.0, fallback_share: float = 1 / 3) -> None:
        self._sessions = make_session_factory(engine)
        self._interval = 1.0 / per_second
        # A send may leave up to LATE_SECONDS after its moment: the chat's next one waits that
        # much longer, so two messages to one chat never land closer than its limit.
        self._per_chat = per_chat_seconds + LATE_SECONDS
        self._fallback = SendLimiter(per_second=per_second * fallback_share,
                                     per_chat_seconds=per_chat_seconds)
        self._reserved = 0
        self._clock = ClockOffset()

    def _reserve(self, chat: str, only_if_idle: bool) -> tuple[bool, float]:
        """Reserve; say if granted, and this process's monotonic time to send or look again."""
        before = time.monotonic()
        with transaction(self._sessions) as session:
            reservation = reserve_send(session, chat_key=chat, interval=self._interval,
                                       per_chat=self._per_chat, only_if_idle=only_if_idle)
        after = time.monotonic()
        self._reserved += 1
        if self._reserved % FORGET_EVERY == 0:
            with transaction(self._sessions) as session:
                forget_paces(session)
        at = self._clock.local(reservation.now.timestamp(), before, after) + reservation.wait
        return reservation.granted, at

    async def wait(self, chat: int | str, *, only_if_idle: bool = False) -> None:
        """Return when this replica may send to the chat; a push lets queued replies go first.

        A push yields for PUSH_YIELDS_AT_MOST seconds, then queues like a reply: a stream of
        answers delays pushes, it cannot starve them.
        """
        missed = 0
        yield_until = time.monotonic() + PUSH_YIELDS_AT_MOST
        while True:
            idle_only = only_if_idle and time.monotonic() < yield_until
            try:
                granted, at = await run_in_threadpool(self._reserve, str(chat), idle_only)
            except Exception:
                log.warning("the shared send pace is out of reach; pacing this replica alone",
                            exc_info=True)
                await self._fallback.wait(chat)
                return
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not granted:
                continue
            late = time.monotonic() - at
            if late <= LATE_SECONDS or missed >= MISSES_AT_MOST:
                return
            # The moment passed while this process was busy: sent now, the message would land
            # among the moments of the sends after it and crowd Telegram's second.
            missed += 1

    async def pause(self, seconds: float) -> None:
        """Hold every replica's sends for a while (Telegram answered 429 with retry_after)."""
        await self._fallback.pause(seconds)
        try:
            await run_in_threadpool(self._pause, seconds)
        except Exception:
            log.warning("could not tell the other replicas of a 429", exc_info=True)

    def _pause(self, seconds: float) -> None:
        with transaction(self._sessions) as session:
            pause_sends(session, seconds=seconds)


def pace_for(engine: Engine, *, per_second: float, per_chat_seconds: float) -> Pace:
    """Return the pace of the bot's sends: shared on PostgreSQL, this process's on SQLite."""
    if engine.dialect.name == "postgresql":
        return SharedPace(engine, per_second=per_second, per_chat_seconds=per_chat_seconds)
    return SendLimiter(per_second=per_second, per_chat_seconds=per_chat_seconds)
