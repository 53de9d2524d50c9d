"""Handoffs to a person: open one per chat, claim it once, keep every message, close it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import HandoffConflict, HandoffNotFound
from storage.models import (
    OPEN_HANDOFF,
    Handoff,
    HandoffMessage,
    HandoffStatus,
    WebhookDelivery,
)


@dataclass(frozen=True)
class Line:
    """One message of a transcript as the bot remembers it."""

    sender: str  # customer | bot | agent
    text: str
    at: datetime
    intent: str | None = None


def open_handoff_of_chat(session: Session, *, chat_key: str) -> Handoff | None:
    """Return the chat's waiting or active handoff, if any."""
    return session.scalar(select(Handoff).where(Handoff.chat_key == chat_key,
                                                Handoff.status.in_(OPEN_HANDOFF)))


def open_handoff(session: Session, *, order_id: int | None, chat_key: str, language: str,
                 reason: str, transcript: Sequence[Line], claim_deadline: datetime | None,
                 now: datetime) -> tuple[Handoff, bool]:
    """Open the chat's handoff with its transcript; the open one and False if there is one."""
    existing = open_handoff_of_chat(session, chat_key=chat_key)
    if existing is not None:
        return existing, False
    handoff = Handoff(order_id=order_id, chat_key=chat_key, language=language, reason=reason,
                      status=HandoffStatus.WAITING, opened_at=now, claim_deadline=claim_deadline)
    try:
        with session.begin_nested():  # another worker may open the chat's handoff meanwhile
            session.add(handoff)
            session.flush()
    except IntegrityError:
        raced = open_handoff_of_chat(session, chat_key=chat_key)
        if raced is None:
            raise
        return raced, False
    for line in transcript:
        add_message(session, handoff=handoff, sender=line.sender, text=line.text, at=line.at,
                    intent=line.intent)
    return handoff, True


def add_message(session: Session, *, handoff: Handoff, sender: str, text: str, at: datetime,
                agent: str | None = None, intent: str | None = None) -> HandoffMessage:
    """Keep one message of the handed-over chat."""
    message = HandoffMessage(handoff_id=handoff.id, sender=sender, agent=agent, text=text,
                             intent=intent, at=at)
    session.add(message)
    if sender == "customer":
        handoff.last_customer_message_at = at
    session.flush()
    return message


def get_handoff(session: Session, *, handoff_id: int) -> Handoff:
    """Return the handoff or raise HandoffNotFound."""
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise HandoffNotFound(str(handoff_id))
    return handoff


def messages_of(session: Session, *, handoff_id: int) -> list[HandoffMessage]:
    """Return the handoff's messages in the order they were written."""
    return list(session.scalars(select(HandoffMessage).where(
        HandoffMessage.handoff_id == handoff_id).order_by(HandoffMessage.id)))


def last_customer_messages(session: Session, *, handoff_ids: list[int]) -> dict[int, str]:
    """Return each handoff's newest customer message, in one query."""
    newest = (select(func.max(HandoffMessage.id)).where(
        HandoffMessage.handoff_id.in_(handoff_ids), HandoffMessage.sender == "customer")
        .group_by(HandoffMessage.handoff_id))
    rows = session.execute(select(HandoffMessage.handoff_id, HandoffMessage.text).where(
        HandoffMessage.id.in_(newest)))
    return {handoff_id: text for handoff_id, text in rows}


def list_handoffs(session: Session, *, statuses: Sequence[str],
                  languages: Sequence[str] | None, limit: int = 200) -> list[Handoff]:
    """Return handoffs of these statuses: open ones oldest first, closed ones newest first."""
    query = select(Handoff).where(Handoff.status.in_(statuses))
    if languages is not None:
        query = query.where(Handoff.language.in_(languages))
    if HandoffStatus.CLOSED in statuses and len(statuses) == 1:
        query = query.order_by(Handoff.closed_at.desc(), Handoff.id.desc())
    else:
        # Waiting before active, each oldest first: the agent's queue reads top down.
        query = query.order_by((Handoff.status != HandoffStatus.WAITING), Handoff.opened_at,
                               Handoff.id)
    return list(session.scalars(query.limit(limit)))


def queue_positions(session: Session, *, handoffs: Sequence[Handoff]) -> dict[int, int]:
    """Return each waiting handoff's place among the waiting handoffs of its language."""
    places: dict[int, int] = {}
    for handoff in handoffs:
        if handoff.status != HandoffStatus.WAITING:
            continue
        ahead = session.scalar(select(func.count()).select_from(Handoff).where(
            Handoff.status == HandoffStatus.WAITING, Handoff.language == handoff.language,
            or_(Handoff.opened_at < handoff.opened_at,
                and_(Handoff.opened_at == handoff.opened_at, Handoff.id < handoff.id))))
        places[handoff.id] = int(ahead or 0) + 1
    return places


def waiting_ahead(session: Session, *, language: str) -> int:
    """Count the handoffs of a language already waiting for an agent."""
    return int(session.scalar(select(func.count()).select_from(Handoff).where(
        Handoff.status == HandoffStatus.WAITING, Handoff.language == language)) or 0)


def recent_waits(session: Session, *, language: str, since: datetime,
                 limit: int = 20) -> list[timedelta]:
    """Return how long the newest claims of a language waited (all languages if too few)."""
    def waits(*where: Any) -> list[timedelta]:
        rows = session.execute(select(Handoff.opened_at, Handoff.claimed_at).where(
            Handoff.claimed_at.is_not(None), Handoff.claimed_at >= since, *where)
            .order_by(Handoff.claimed_at.desc()).limit(limit))
        return [claimed - opened for opened, claimed in rows if claimed is not None]
    own = waits(Handoff.language == language)
    return own if len(own) >= 3 else waits()


def claim(session: Session, *, handoff_id: int, agent: str, now: datetime) -> Handoff:
    """Give the waiting handoff to this agent; exactly one of racing agents wins."""
    won = session.execute(
        update(Handoff).where(Handoff.id == handoff_id, Handoff.status == HandoffStatus.WAITING)
        .values(status=HandoffStatus.ACTIVE, claimed_by=agent, claimed_at=now)
        .execution_options(synchronize_session=False))
    handoff = get_handoff(session, handoff_id=handoff_id)
    session.refresh(handoff)
    if not won.rowcount:  # type: ignore[attr-defined]
        if handoff.status == HandoffStatus.ACTIVE and handoff.claimed_by == agent:
            return handoff  # the same agent again: no change
        raise HandoffConflict(_held(handoff))
    return handoff


def require_holder(session: Session, *, handoff_id: int, agent: str) -> Handoff:
    """Return the handoff if this agent holds it; raise HandoffConflict otherwise."""
    handoff = get_handoff(session, handoff_id=handoff_id)
    if handoff.status != HandoffStatus.ACTIVE or handoff.claimed_by != agent:
        raise HandoffConflict(_held(handoff) if handoff.status != HandoffStatus.WAITING
                              else "claim the handoff before answering")
    return handoff


def close(session: Session, *, handoff_id: int, by: str, note: str | None, now: datetime,
          agent: bool = True) -> Handoff:
    """Close an open handoff: its holder, any agent while it waits, or the customer."""
    allowed = [Handoff.id == handoff_id, Handoff.status.in_(OPEN_HANDOFF)]
    if agent:
        allowed.append(or_(Handoff.status == HandoffStatus.WAITING, Handoff.claimed_by == by))
    done = session.execute(
        update(Handoff).where(*allowed)
        .values(status=HandoffStatus.CLOSED, closed_by=by, closed_at=now, close_note=note)
        .execution_options(synchronize_session=False))
    handoff = get_handoff(session, handoff_id=handoff_id)
    session.refresh(handoff)
    if not done.rowcount:  # type: ignore[attr-defined]
        raise HandoffConflict(_held(handoff))
    return handoff


def _held(handoff: Handoff) -> str:
    if handoff.status == HandoffStatus.CLOSED:
        return f"handoff {handoff.id} is already closed"
    return f"handoff {handoff.id} is held by {handoff.claimed_by}"


def overdue(session: Session, *, now: datetime, limit: int = 500) -> list[Handoff]:
    """Lock the waiting handoffs past their claim deadline whose customer was not told yet."""
    query = (select(Handoff).where(
        Handoff.status == HandoffStatus.WAITING, Handoff.claim_deadline <= now,
        Handoff.timeout_told_at.is_(None)).order_by(Handoff.claim_deadline).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # another replica tells the rest
    return list(session.scalars(query))


def forget_chat(session: Session, *, chat_key: str, now: datetime) -> list[Handoff]:
    """Close the chat's open handoff and drop its messages (the customer deleted the chat)."""
    closed = []
    for handoff in session.scalars(select(Handoff).where(Handoff.chat_key == chat_key)):
        if handoff.status != HandoffStatus.CLOSED:
            handoff.status, handoff.closed_by, handoff.closed_at = (
                HandoffStatus.CLOSED, "customer", now)
            handoff.close_note = "the customer deleted the chat"
            closed.append(handoff)
        session.query(HandoffMessage).filter(HandoffMessage.handoff_id == handoff.id).delete()
        handoff.chat_key = None
    return closed


# The webhook's outbox -----------------------------------------------------------------------


def enqueue_webhook(session: Session, *, event: str, body: dict[str, Any],
                    now: datetime) -> None:
    """Keep an event for the operator's webhook, to be posted after this commit."""
    session.add(WebhookDelivery(event=event, body=body, attempts=0, next_attempt_at=now,
                                created_at=now))


def claim_webhooks(session: Session, *, now: datetime, lease: timedelta,
                   limit: int = 50) -> list[WebhookDelivery]:
    """Lease the due webhook events, oldest first; no two workers get the same one."""
    query = (select(WebhookDelivery).where(
        WebhookDelivery.delivered_at.is_(None), WebhookDelivery.failed_at.is_(None),
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now))
        .order_by(WebhookDelivery.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    for row in rows:
        row.lease_until = now + lease
    return rows


def webhook_done(session: Session, *, delivery_id: int, now: datetime, error: str | None,
                 retry_at: datetime | None, max_attempts: int) -> None:
    """Record a webhook attempt: delivered, retried later, or given up."""
    row = session.get(WebhookDelivery, delivery_id)
    if row is None:
        return
    row.attempts += 1
    row.lease_until = None
    if error is None:
        row.delivered_at = now
        return
    row.last_error = error[:500]
    if row.attempts >= max_attempts or retry_at is None:
        row.failed_at = now
    else:
        row.next_attempt_at = retry_at
