"""The notification outbox: decided once, claimed by one worker, sent once, every attempt kept."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import Notification, NotificationAttempt, NotificationStatus


def enqueue(session: Session, *, order_id: int, kind: str, dedupe_key: str,
            payload: dict[str, Any], now: datetime) -> bool:
    """Insert the push unless its (order, dedupe key) exists; say whether it was new."""
    values = {"order_id": order_id, "kind": kind, "dedupe_key": dedupe_key, "payload": payload,
              "status": NotificationStatus.PENDING, "attempts": 0, "next_attempt_at": now,
              "created_at": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Notification).values(**values).on_conflict_do_nothing(
        index_elements=["order_id", "dedupe_key"]).returning(Notification.id)
    # RETURNING says whether a row went in; rowcount is not reliable for a skipped insert.
    return session.execute(statement).first() is not None


def sent_of_order(session: Session, *, order_id: int) -> list[Notification]:
    """Return every push decided for the order, oldest first."""
    return list(session.scalars(
        select(Notification).where(Notification.order_id == order_id).order_by(Notification.id)))


def claim_due(session: Session, *, worker: str, now: datetime, limit: int,
              lease: timedelta, order_id: int | None = None) -> list[Notification]:
    """Lease up to `limit` due pushes to this worker; no two workers get the same row."""
    due = (
        select(Notification.id)
        .where(
            Notification.status == NotificationStatus.PENDING,
            Notification.next_attempt_at <= now,
            or_(Notification.lease_until.is_(None), Notification.lease_until < now),
        )
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
    )
    if order_id is not None:
        due = due.where(Notification.order_id == order_id)
    if session.get_bind().dialect.name == "postgresql":
        # Rows another worker is claiming are skipped, not waited for.
        due = due.with_for_update(skip_locked=True)
    # On SQLite the whole transaction holds the write lock (BEGIN IMMEDIATE): one claimer at a time.
    ids = list(session.scalars(due))
    if not ids:
        return []
    session.execute(
        update(Notification).where(Notification.id.in_(ids))
        .values(lease_until=now + lease, claimed_by=worker)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(
        select(Notification).where(Notification.id.in_(ids)).order_by(Notification.id)
        .execution_options(populate_existing=True)))


def _still_mine(notification_id: int, worker: str) -> Any:
    return and_(Notification.id == notification_id, Notification.claimed_by == worker,
                Notification.status == NotificationStatus.PENDING)


def _attempt(session: Session, notification_id: int, outcome: str, detail: str | None,
             now: datetime, chat_key: str | None = None) -> None:
    session.add(NotificationAttempt(notification_id=notification_id, outcome=outcome,
                                    detail=(detail or "")[:500] or None, at=now,
                                    chat_key=chat_key))


def mark_delivered(session: Session, *, notification_id: int, worker: str, chat_key: str,
                   now: datetime) -> bool:
    """Record that one of the push's chats got it; False if the lease was lost meanwhile."""
    mine = session.scalar(select(Notification.id).where(_still_mine(notification_id, worker)))
    if mine is None:
        return False
    _attempt(session, notification_id, "delivered", None, now, chat_key)
    return True


def delivered_chats(session: Session, *, notification_ids: list[int]) -> dict[int, set[str]]:
    """Return the chats each push already reached (on an earlier, interrupted attempt)."""
    found: dict[int, set[str]] = {}
    for start in range(0, len(notification_ids), 500):
        rows = session.execute(
            select(NotificationAttempt.notification_id, NotificationAttempt.chat_key).where(
                NotificationAttempt.notification_id.in_(notification_ids[start:start + 500]),
                NotificationAttempt.outcome == "delivered"))
        for notification_id, chat_key in rows:
            if chat_key is not None:
                found.setdefault(notification_id, set()).add(chat_key)
    return found


def mark_sent(session: Session, *, notification_id: int, worker: str, now: datetime) -> bool:
    """Record the delivery; False if the lease was lost to another worker meanwhile."""
    result = session.execute(
        update(Notification).where(_still_mine(notification_id, worker))
        .values(status=NotificationStatus.SENT, sent_at=now, lease_until=None,
                attempts=Notification.attempts + 1)
        .execution_options(synchronize_session=False))
    _attempt(session, notification_id, "sent", None, now)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def retry_later(session: Session, *, notification_id: int, worker: str, now: datetime,
                at: datetime, error: str, max_attempts: int) -> None:
    """Put the push back for a later attempt, or give up after too many."""
    row = session.get(Notification, notification_id)
    attempts = (row.attempts if row else 0) + 1
    gave_up = attempts >= max_attempts
    session.execute(
        update(Notification).where(_still_mine(notification_id, worker))
        .values(attempts=attempts, next_attempt_at=at, lease_until=None, claimed_by=None,
                last_error=error[:500],
                status=NotificationStatus.FAILED if gave_up else NotificationStatus.PENDING)
        .execution_options(synchronize_session=False))
    _attempt(session, notification_id, "error" if gave_up else "retry", error, now)


def finish_undeliverable(session: Session, *, notification_id: int, worker: str, now: datetime,
                         status: str, reason: str) -> None:
    """Stop trying: the chat blocked the bot (failed) or wants no messages (held)."""
    session.execute(
        update(Notification).where(_still_mine(notification_id, worker))
        .values(status=status, lease_until=None, last_error=reason[:500],
                attempts=Notification.attempts + 1)
        .execution_options(synchronize_session=False))
    _attempt(session, notification_id, "blocked" if status == NotificationStatus.FAILED
             else "held", reason, now)


def pushes_of_orders(session: Session, *, order_ids: list[int]) -> dict[int, list[Notification]]:
    """Return every order's decided pushes, oldest first, in one query per 500 orders."""
    found: dict[int, list[Notification]] = {i: [] for i in order_ids}
    for start in range(0, len(order_ids), 500):
        chunk = order_ids[start:start + 500]
        for row in session.scalars(select(Notification).where(
                Notification.order_id.in_(chunk)).order_by(Notification.id)):
            found[row.order_id].append(row)
    return found
