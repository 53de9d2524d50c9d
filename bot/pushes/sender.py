"""Deliver the outbox: claim due pushes, render them in the customer's language, send once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from starlette.concurrency import run_in_threadpool

from bot.channels.base import Blocked, Channel, TryLater
from bot.pace import SendLimiter
from bot.pushes.leader import SenderLease
from bot.services import Services
from bot.turns import conversation_of, order_view, rules_of, texts_factory
from dialogues.model import Reply
from dialogues.pushes import HANDOFF_KINDS, push_step
from storage.chats import chats_of_orders, mark_unreachable, save_conversation
from storage.db import transaction
from storage.errors import ConversationConflict
from storage.models import Notification, NotificationStatus
from storage.orders import orders_by_ids
from storage.outbox import (
    claim_due,
    delivered_chats,
    finish_undeliverable,
    mark_delivered,
    mark_sent,
    retry_later,
)

log = logging.getLogger(__name__)
BATCH = 50
# Sent even to a chat that turned pushes off: a cancellation, and a person's answers.
ALWAYS_SENT = frozenset({"cancelled_by_operator"}) | HANDOFF_KINDS
MAX_BACKOFF_SECONDS = 600
TAKEOVER_PAUSE_SECONDS = 1.0  # Telegram counts its limit per second


@dataclass(frozen=True)
class Rendered:
    """A claimed push, rendered for each of its order's chats."""

    notification_id: int
    kind: str
    targets: tuple[tuple[str, int | None, tuple[Reply, ...]], ...]  # chat key, tg id, replies
    skip_reason: str | None = None  # held: nobody to tell, or the customer opted out


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped at ten minutes."""
    ceiling = min(float(MAX_BACKOFF_SECONDS), 2.0 ** min(attempt, 20))
    return random.uniform(0.5, 1.0) * ceiling  # noqa: S311 - jitter, not cryptography


class Sender:
    """Claims pushes and delivers each exactly once through its channel."""

    def __init__(self, services: Services, channels: list[Channel], *,
                 limiter: SendLimiter | None = None, order_id: int | None = None) -> None:
        self.services = services
        self.channels = {channel.prefix: channel for channel in channels}
        self.order_id = order_id  # a terminal's sender delivers its own order's pushes only
        pushes = services.settings.pushes
        self.limiter = limiter or SendLimiter(per_second=pushes.send_rate_per_second)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.wake = asyncio.Event()
        self.claim_lease = timedelta(seconds=pushes.lease_seconds)
        # The service's sender sends for every replica, one at a time; a terminal's sender
        # delivers its own order's pushes to its own screen.
        self.lease = SenderLease(services.engine) if order_id is None else None

    def _channel(self, chat_key: str) -> Channel | None:
        return self.channels.get(chat_key.split(":", 1)[0] + ":")

    def _claim_and_render(self) -> list[Rendered]:
        rules = rules_of(self.services)
        with transaction(self.services.sessions) as session:
            now = self.services.clock()
            claimed = claim_due(session, worker=self.worker, now=now, limit=BATCH,
                                lease=self.claim_lease, order_id=self.order_id)
            order_ids = list({n.order_id for n in claimed})
            orders = orders_by_ids(session, order_ids=order_ids)
            chats = chats_of_orders(session, order_ids=order_ids)
            # A push retried after a partial failure or a crash goes only to the chats it missed.
            reached = delivered_chats(session, notification_ids=[n.id for n in claimed])
            rendered = []
            for notification in claimed:
                order = orders.get(notification.order_id)
                # A person's messages go to the one chat they answer, whatever its settings.
                only = (notification.payload.get("chat_key")
                        if notification.kind in HANDOFF_KINDS else None)
                targets = [c for c in chats.get(notification.order_id, [])
                           if self._channel(c.chat_key) is not None and not c.unreachable
                           and (c.notifications_enabled or notification.kind in ALWAYS_SENT)
                           and (only is None or c.chat_key == only)
                           and c.chat_key not in reached.get(notification.id, set())]
                if order is not None and not targets and notification.id in reached:
                    rendered.append(Rendered(notification.id, notification.kind, ()))
                    continue  # every chat got it before the interruption: only "sent" is left
                if order is None or not targets:
                    rendered.append(Rendered(notification.id, notification.kind, (),
                                             "no reachable chat wants this push"))
                    continue
                view = order_view(session, order=order, services=self.services,
                                  now=now)
                decide = partial(push_step, rules=rules, texts_for=texts_factory(order.timezone))
                out = []
                for chat in targets:
                    conversation, version = conversation_of(
                        session, chat.chat_key, chat.language or order.customer.language)
                    result = decide(conversation, notification.kind, notification.payload,
                                    view, now)
                    try:
                        with session.begin_nested():
                            save_conversation(
                                session, chat_key=chat.chat_key,
                                state=result.conversation.state,
                                language=result.conversation.language,
                                data=result.conversation.data, now=now,
                                expected_version=version)
                    except ConversationConflict:
                        pass  # the customer is mid-turn; the push still goes out
                    out.append((chat.chat_key, chat.telegram_chat_id, result.replies))
                rendered.append(Rendered(notification.id, notification.kind, tuple(out)))
            return rendered

    def _finish(self, notification_id: int, outcome: str, detail: str | None = None,
                retry_after: float | None = None, telegram_chat_id: int | None = None) -> None:
        settings = self.services.settings.pushes
        with transaction(self.services.sessions) as session:
            now = self.services.clock()
            if outcome == "sent":
                if not mark_sent(session, notification_id=notification_id, worker=self.worker,
                                 now=now):
                    log.warning("push %s: lease lost before it was marked sent",
                                notification_id)
            elif outcome == "retry":
                row = session.get(Notification, notification_id)
                attempt = (row.attempts if row else 0) + 1
                delay = retry_after if retry_after is not None else backoff(attempt)
                retry_later(session, notification_id=notification_id, worker=self.worker,
                            now=now, at=now + timedelta(seconds=delay), error=detail or "",
                            max_attempts=settings.max_attempts)
            else:
                if outcome == "blocked" and telegram_chat_id is not None:
                    mark_unreachable(session, telegram_chat_id=telegram_chat_id)
                status = (NotificationStatus.FAILED if outcome == "blocked"
                          else NotificationStatus.HELD)
                finish_undeliverable(session, notification_id=notification_id,
                                     worker=self.worker, now=now, status=status,
                                     reason=detail or outcome)

    async def run_once(self) -> int:
        """Claim one batch and deliver it; return how many pushes were handled."""
        batch = await run_in_threadpool(self._claim_and_render)
        # Concurrently: the limiter spaces the sends, and each push goes to its own chats, so
        # a chat still gets its pushes in order (one batch never holds two for one order's
        # chat out of order: they are claimed oldest first and the limiter queues per chat).
        await asyncio.gather(*(self._deliver(item) for item in batch))
        return len(batch)

    async def _deliver(self, item: Rendered) -> None:
        metrics = self.services.metrics.pushes
        if item.skip_reason is not None:
            await run_in_threadpool(self._finish, item.notification_id, "held", item.skip_reason)
            metrics.labels(item.kind, "held").inc()
            return
        for number, (chat_key, telegram_chat_id, replies) in enumerate(item.targets, 1):
            await self.limiter.wait(chat_key)
            channel = self._channel(chat_key)
            assert channel is not None  # targets were chosen by their channel
            try:
                await channel.deliver(chat_key, telegram_chat_id, replies)
            except Blocked as exc:
                await run_in_threadpool(self._finish, item.notification_id, "blocked", str(exc),
                                        None, telegram_chat_id)
                metrics.labels(item.kind, "blocked").inc()
                return
            except TryLater as exc:
                if exc.after:
                    await self.limiter.pause(exc.after)
                await run_in_threadpool(self._finish, item.notification_id, "retry", str(exc),
                                        exc.after)
                metrics.labels(item.kind, "retry").inc()
                return
            if number < len(item.targets):  # the last one is recorded by "sent" below
                await run_in_threadpool(self._delivered, item.notification_id, chat_key)
        await run_in_threadpool(self._finish, item.notification_id, "sent")
        metrics.labels(item.kind, "sent").inc()

    def _delivered(self, notification_id: int, chat_key: str) -> None:
        with transaction(self.services.sessions) as session:
            if not mark_delivered(session, notification_id=notification_id, worker=self.worker,
                                  chat_key=chat_key, now=self.services.clock()):
                log.warning("push %s: lease lost while delivering it", notification_id)

    async def run(self, stop: asyncio.Event, *, idle_seconds: float = 1.0) -> None:
        """Deliver until stopped (while this replica holds the sender lease); sleep when idle."""
        poll = self.services.settings.pushes.leader_poll_seconds
        try:
            while not stop.is_set():
                handled = 0
                try:
                    was_leading = self.lease is None or self.lease.held_before
                    leading = self.lease is None or await run_in_threadpool(self.lease.hold)
                    self.services.metrics.sender_leader.set(1 if leading else 0)
                    if leading and not was_leading:
                        # The sender before may have spent this second's budget just now.
                        await asyncio.sleep(TAKEOVER_PAUSE_SECONDS)
                    if leading:
                        handled = await self.run_once()
                except Exception:
                    log.exception("the sender failed; trying again shortly")
                    self.services.metrics.errors.labels("sender").inc()
                    leading = True
                if handled == 0:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(),
                                               timeout=idle_seconds if leading else poll)
        finally:
            if self.lease is not None:
                await run_in_threadpool(self.lease.release)
