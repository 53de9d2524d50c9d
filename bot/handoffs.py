"""Handoffs at the edge: the bot steps aside, agents claim, answer and hand back."""

from __future__ import annotations

import logging
import statistics
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.services import Services
from dialogues import handoff as texts
from dialogues.engine import clean, menu_buttons
from dialogues.model import ButtonPress, HandoffOutlook, Incoming, Reply, TextMessage
from dialogues.texts import Texts
from storage import handoffs as store
from storage.db import transaction
from storage.models import Handoff, HandoffStatus, Order
from storage.orders import get_order_by_id, orders_by_ids
from storage.outbox import enqueue

log = logging.getLogger(__name__)
WAITS_SEEN = timedelta(days=7)  # claims older than this say little about today's wait
MIN_WAITS = 3  # fewer recent claims than this: no honest estimate of the wait


# What the customer can be told ---------------------------------------------------------------


def outlook(session: Session, services: Services, *, language: str, now: datetime,
            order: Order | None, handoff: Handoff | None = None) -> HandoffOutlook:
    """Say what a handoff (opened now, or this one) can promise: hours, place, wait."""
    hours = services.settings.business_hours()
    open_now = hours.is_open(now)
    if handoff is not None:
        position = store.queue_positions(session, handoffs=[handoff]).get(handoff.id, 0)
        answer_by = None if handoff.timeout_told_at else handoff.claim_deadline
    else:
        position = store.waiting_ahead(session, language=language) + 1
        answer_by = claim_deadline(services, now)
    waits = store.recent_waits(session, language=language, since=now - WAITS_SEEN)
    expected = (timedelta(seconds=statistics.median(w.total_seconds() for w in waits))
                if len(waits) >= MIN_WAITS else None)
    phone = order.customer.phone if order is not None else None
    digits = "".join(c for c in phone or "" if c.isdigit())
    return HandoffOutlook(open_now=open_now, back_at=None if open_now else hours.next_open(now),
                          position=position, expected_wait=expected, answer_by=answer_by,
                          phone_tail=digits[-3:] if len(digits) >= 6 else None)


def claim_deadline(services: Services, now: datetime) -> datetime | None:
    """Return when an unclaimed handoff opened now is owed an honest word."""
    timeout = timedelta(minutes=services.settings.handoff.claim_timeout_minutes)
    return services.settings.business_hours().deadline(now, timeout)


# The customer's side -------------------------------------------------------------------------


def open_for_chat(session: Session, services: Services, *, order: Order, chat_key: str,
                  language: str, reason: str, recent: list[list[Any]], now: datetime) -> Handoff:
    """Open the chat's handoff with the last messages before it; tell the webhook."""
    keep = services.settings.handoff.transcript_messages
    lines = [store.Line(sender=entry[0], text=entry[1],
                        at=datetime.fromisoformat(entry[2]) if len(entry) > 2 and entry[2]
                        else now, intent=entry[3] if len(entry) > 3 else None)
             for entry in (recent[-keep:] if keep else [])]
    handoff, new = store.open_handoff(session, order_id=order.id, chat_key=chat_key,
                                      language=language, reason=reason, transcript=lines,
                                      claim_deadline=claim_deadline(services, now), now=now)
    if new:
        handoff.waiting_told_at = now  # the opening reply says where the customer stands
        _event(session, services, "opened", handoff, now)
        services.metrics.handoffs.labels("opened").inc()
    return handoff


def customer_turn(session: Session, services: Services, *, handoff: Handoff, order: Order,
                  incoming: Incoming, t: Texts, now: datetime) -> tuple[tuple[Reply, ...], bool]:
    """Take the customer's input while a person holds the chat; say if the bot is back."""
    if isinstance(incoming, ButtonPress) and incoming.payload == texts.BACK:
        store.close(session, handoff_id=handoff.id, by="customer", note=None, now=now,
                    agent=False)
        _event(session, services, "closed", handoff, now)
        services.metrics.handoffs.labels("closed_by_customer").inc()
        return (texts.back_to_bot(t, menu_buttons(t)),), True
    if isinstance(incoming, ButtonPress) and incoming.payload == texts.CALLBACK:
        handoff.callback_requested_at = now
        message = store.add_message(session, handoff=handoff, sender="customer",
                                    text="[asked for a call back]", at=now)
        _event(session, services, "customer_message", handoff, now, message.text)
        view = outlook(session, services, language=handoff.language, now=now, order=order,
                       handoff=handoff)
        return (texts.callback_requested(t, phone_tail=view.phone_tail, outlook=view,
                                         now=now),), False
    if not isinstance(incoming, TextMessage):
        return (texts.with_a_person(t),), False
    intent = incoming.parsed.intent if incoming.parsed.available else None
    message = store.add_message(session, handoff=handoff, sender="customer",
                                text=clean(incoming.text)[:4000], at=now, intent=intent)
    _event(session, services, "customer_message", handoff, now, message.text)
    every = timedelta(minutes=services.settings.handoff.waiting_note_minutes)
    if handoff.status == HandoffStatus.WAITING and (
            handoff.waiting_told_at is None or now - handoff.waiting_told_at >= every):
        handoff.waiting_told_at = now
        view = outlook(session, services, language=handoff.language, now=now, order=order,
                       handoff=handoff)
        return (texts.still_waiting(t, view, now),), False
    return (), False  # the person reads it; a reply from the bot would talk over them


# The agents' side ----------------------------------------------------------------------------


def claim(session: Session, services: Services, *, handoff_id: int, agent: str,
          now: datetime) -> Handoff:
    """Give the handoff to the agent (one winner); the customer learns who answers."""
    was_active = store.get_handoff(session, handoff_id=handoff_id).status == "active"
    handoff = store.claim(session, handoff_id=handoff_id, agent=agent, now=now)
    if not was_active:
        _push(session, handoff, "handoff_claimed", {"agent": agent}, now, "claimed")
        _event(session, services, "claimed", handoff, now)
        services.metrics.handoffs.labels("claimed").inc()
    return handoff


def send(session: Session, services: Services, *, handoff_id: int, agent: str, text: str,
         now: datetime) -> int:
    """Keep the agent's message and queue it for the customer's chat, exactly once."""
    handoff = store.require_holder(session, handoff_id=handoff_id, agent=agent)
    message = store.add_message(session, handoff=handoff, sender="agent", agent=agent,
                                text=text, at=now)
    _push(session, handoff, "agent_message", {"agent": agent, "text": text}, now,
          f"message:{message.id}")
    services.metrics.handoffs.labels("agent_message").inc()
    return message.id


def close(session: Session, services: Services, *, handoff_id: int, agent: str,
          note: str | None, now: datetime) -> Handoff:
    """Hand the chat back to the bot and tell the customer."""
    handoff = store.close(session, handoff_id=handoff_id, by=agent, note=note, now=now)
    _push(session, handoff, "handoff_closed", {"agent": agent}, now, "closed")
    _event(session, services, "closed", handoff, now)
    services.metrics.handoffs.labels("closed").inc()
    return handoff


def tell_overdue(services: Services, *, now: datetime) -> int:
    """Tell every customer whose handoff nobody claimed in time; count them."""
    with transaction(services.sessions) as session:
        overdue = store.overdue(session, now=now)
        for handoff in overdue:
            handoff.timeout_told_at = now
            _push(session, handoff, "handoff_timeout", {}, now, "timeout")
            _event(session, services, "timed_out", handoff, now)
        if overdue:
            services.metrics.handoffs.labels("timed_out").inc(len(overdue))
        return len(overdue)


def _order(session: Session, handoff: Handoff) -> Order | None:
    return get_order_by_id(session, order_id=handoff.order_id) if handoff.order_id else None


def _push(session: Session, handoff: Handoff, kind: str, payload: dict[str, Any],
          now: datetime, key: str) -> None:
    """Queue a message for the handed-over chat through the outbox (rate limit, retries)."""
    if handoff.order_id is None or handoff.chat_key is None:
        return  # the customer deleted the chat: nobody to tell
    enqueue(session, order_id=handoff.order_id, kind=kind, dedupe_key=f"handoff:{handoff.id}:{key}",
            payload={**payload, "chat_key": handoff.chat_key, "handoff": handoff.id}, now=now)


# As JSON, for the ops API and the webhook ----------------------------------------------------


def _iso(value: datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def summaries(session: Session, services: Services, *, handoffs: list[Handoff]
              ) -> list[dict[str, Any]]:
    """Return the handoffs as the list shows them, with queue places and last messages."""
    zone = ZoneInfo(services.settings.business_hours().zone)
    ids = [h.id for h in handoffs]
    orders = orders_by_ids(session, order_ids=[h.order_id for h in handoffs if h.order_id])
    places = store.queue_positions(session, handoffs=handoffs)
    last = store.last_customer_messages(session, handoff_ids=ids) if ids else {}
    return [{
        "id": h.id,
        "order": orders[h.order_id].number if h.order_id in orders else None,
        "language": h.language, "status": h.status, "reason": h.reason,
        "opened_at": _iso(h.opened_at, zone), "claimed_by": h.claimed_by,
        "claimed_at": _iso(h.claimed_at, zone), "closed_at": _iso(h.closed_at, zone),
        "closed_by": h.closed_by, "last_customer_message": last.get(h.id),
        "queue_position": places.get(h.id), "claim_deadline": _iso(h.claim_deadline, zone),
        "callback_requested": h.callback_requested_at is not None,
    } for h in handoffs]


def detail(session: Session, services: Services, *, handoff: Handoff,
           order_view: dict[str, Any] | None) -> dict[str, Any]:
    """Return one handoff with its transcript, the order and the customer's name and phone."""
    zone = ZoneInfo(services.settings.business_hours().zone)
    order = _order(session, handoff)
    return {
        **summaries(session, services, handoffs=[handoff])[0],
        "close_note": handoff.close_note,
        "messages": [{"from": m.sender, "text": m.text, "at": _iso(m.at, zone),
                      **({"intent": m.intent} if m.intent else {}),
                      **({"agent": m.agent} if m.agent else {})}
                     for m in store.messages_of(session, handoff_id=handoff.id)],
        "order": order_view,
        "customer": {"name": order.customer.name, "phone": order.customer.phone}
        if order is not None else None,
    }


def _event(session: Session, services: Services, event: str, handoff: Handoff,
           now: datetime, text: str | None = None) -> None:
    """Keep an event for the operator's webhook (none configured: nothing to keep)."""
    if not services.settings.handoff.webhook_url:
        return
    session.flush()
    body = {"event": event, "at": now.isoformat(),
            "handoff": summaries(session, services, handoffs=[handoff])[0]}
    if text is not None:
        body["text"] = text
    store.enqueue_webhook(session, event=event, body=body, now=now)
