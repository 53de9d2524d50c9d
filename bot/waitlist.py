"""The waitlist at the edge: hold freed windows for those who wait, and tell them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.services import Services
from dialogues.due import PushRules, in_quiet_hours
from storage import waitlist
from storage.chats import chats_of_orders
from storage.db import transaction
from storage.models import Order, WaitlistEntry
from storage.outbox import enqueue

log = logging.getLogger(__name__)


def run_waitlist(services: Services, *, now: datetime, rules: PushRules) -> int:
    """End the holds that ran out, hold each free window for the next who waits; count offers."""
    settings = services.settings
    hold = timedelta(minutes=settings.waitlist.hold_minutes)
    cutoff = timedelta(hours=settings.rules.reschedule_cutoff_hours)
    with transaction(services.sessions) as session:
        waitlist.expire_holds(session, now=now)

        def may_offer(entry: WaitlistEntry, order: Order) -> bool:
            # The customer's own rules: not at night, not when they turned pushes off, not
            # beyond the moves they may make, and never too close to their visit.
            if in_quiet_hours(now, ZoneInfo(order.timezone), rules):
                return False
            if order.moves >= settings.rules.max_moves_per_order:
                return False
            if order.window_start is None or order.window_start - now < cutoff:
                return False
            chats = chats_of_orders(session, order_ids=[order.id])[order.id]
            return any(c.notifications_enabled and not c.unreachable for c in chats)

        made = waitlist.offer_free_places(session, now=now, hold=hold, earliest=now + cutoff,
                                          may_offer=may_offer)
        for offered in made:
            enqueue(session, order_id=offered.order.id, kind="waitlist_offer",
                    dedupe_key=f"waitlist:{offered.offer.id}",
                    payload={"offer": offered.offer.id, "from": offered.slot.start.isoformat(),
                             "to": offered.slot.end.isoformat(),
                             "until": offered.offer.expires_at.isoformat()}, now=now)
        if made:
            log.info("%d freed windows offered from the waitlist", len(made))
        return len(made)


def waitlist_json(session: Session, *, order: Order, zone: ZoneInfo) -> dict[str, Any] | None:
    """Return the order's newest waitlist entry and its offers, for the ops API."""
    entry = waitlist.latest_entry(session, order_id=order.id)
    if entry is None:
        return None

    def iso(value: datetime | None) -> str | None:
        return value.astimezone(zone).isoformat() if value is not None else None

    return {"status": entry.status, "since": iso(entry.created_at), "before": iso(entry.before),
            "part": entry.part, "ended_at": iso(entry.ended_at),
            "offers": [{"slot": o.slot_id, "status": o.status, "offered_at": iso(o.offered_at),
                        "expires_at": iso(o.expires_at), "ended_at": iso(o.ended_at)}
                       for o in waitlist.offers_of(session, entry_id=entry.id)]}
