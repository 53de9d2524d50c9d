"""The waitlist for earlier windows: who waits, which free place is held for whom, until when."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import StorageError
from storage.models import (
    ACTIVE_STATUSES,
    CapacitySlot,
    Order,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from storage.slots import book_slot

Row = TypeVar("Row")
OPEN = (WaitlistStatus.WAITING, WaitlistStatus.OFFERED)
# Parts of the day as local hours [from, to) in which a window must start (as dialogues/when).
PARTS = {"morning": (0, 12), "midday": (11, 14), "afternoon": (12, 17), "evening": (16, 24)}


class HoldGone(StorageError):
    """The offer's hold ran out, was passed on, or belongs to another order."""


@dataclass(frozen=True)
class Offered:
    """A place just held for a waiting customer."""

    offer: WaitlistOffer
    entry: WaitlistEntry
    order: Order
    slot: CapacitySlot


def open_entry(session: Session, *, order_id: int) -> WaitlistEntry | None:
    """Return the order's waiting (or offered) entry, if any."""
    return session.scalar(select(WaitlistEntry).where(WaitlistEntry.order_id == order_id,
                                                      WaitlistEntry.status.in_(OPEN)))


def latest_entry(session: Session, *, order_id: int) -> WaitlistEntry | None:
    """Return the order's newest entry, open or not."""
    return session.scalar(select(WaitlistEntry).where(WaitlistEntry.order_id == order_id)
                          .order_by(WaitlistEntry.id.desc()).limit(1))


def offers_of(session: Session, *, entry_id: int) -> list[WaitlistOffer]:
    """Return the entry's offers, oldest first."""
    return list(session.scalars(select(WaitlistOffer).where(WaitlistOffer.entry_id == entry_id)
                                .order_by(WaitlistOffer.id)))


def join(session: Session, *, order: Order, before: datetime, part: str | None,
         now: datetime) -> WaitlistEntry:
    """Put the order on the waitlist, or change its wishes (its place in line is kept)."""
    entry = open_entry(session, order_id=order.id)
    if entry is not None:
        entry.before, entry.part = before, part
        return entry
    entry = WaitlistEntry(order_id=order.id, region=order.region, before=before, part=part,
                          status=WaitlistStatus.WAITING, created_at=now, queued_at=now)
    try:
        with session.begin_nested():  # a second worker may add the same order meanwhile
            session.add(entry)
            session.flush()
    except IntegrityError:
        raced = open_entry(session, order_id=order.id)
        if raced is None:
            raise
        return raced
    return entry


def leave(session: Session, *, order_id: int, now: datetime) -> bool:
    """Take the order off the waitlist (a held place is released); say if it was on it."""
    entry = open_entry(session, order_id=order_id)
    if entry is None:
        return False
    _end_entry(session, entry, WaitlistStatus.LEFT, now)
    return True


def _end_entry(session: Session, entry: WaitlistEntry, status: str, now: datetime) -> None:
    for offer in session.scalars(select(WaitlistOffer).where(
            WaitlistOffer.entry_id == entry.id, WaitlistOffer.status == "held")):
        _release(session, offer, "void", now)
    entry.status, entry.ended_at = status, now


def _release(session: Session, offer: WaitlistOffer, status: str, now: datetime) -> None:
    """End a held offer; its place becomes free again (for the next one who waits)."""
    offer.status, offer.ended_at = status, now
    session.execute(update(CapacitySlot).where(CapacitySlot.id == offer.slot_id,
                                               CapacitySlot.held > 0)
                    .values(held=CapacitySlot.held - 1).execution_options(
                        synchronize_session=False))


def expire_holds(session: Session, *, now: datetime) -> list[WaitlistOffer]:
    """End the holds whose time ran out; their customers wait on, their places are free."""
    expired = list(session.scalars(_locked(session, select(WaitlistOffer).where(
        WaitlistOffer.status == "held", WaitlistOffer.expires_at <= now))))
    for offer in expired:
        _release(session, offer, "expired", now)
        _back_in_line(session, offer, now)
    return expired


def _back_in_line(session: Session, offer: WaitlistOffer, now: datetime) -> None:
    """The customer let the held window go: they wait on, behind those who waited meanwhile."""
    entry = session.get(WaitlistEntry, offer.entry_id)
    if entry is not None and entry.status == WaitlistStatus.OFFERED:
        entry.status, entry.queued_at = WaitlistStatus.WAITING, now


def _locked(session: Session, query: Select[Row]) -> Select[Row]:
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)  # another replica takes the rest
    return query


def offer_free_places(session: Session, *, now: datetime, hold: timedelta, earliest: datetime,
                      may_offer: Callable[[WaitlistEntry, Order], bool]) -> list[Offered]:
    """Hold each free place that fits for the customer who has waited longest for it.

    One place goes to one customer, and a customer has one offer at a time; a window starting
    before `earliest` (the move cut-off) is never offered.
    """
    waiting = list(session.scalars(_locked(session, select(WaitlistEntry).where(
        WaitlistEntry.status == WaitlistStatus.WAITING)
        .order_by(WaitlistEntry.queued_at, WaitlistEntry.id))))
    if not waiting:
        return []
    orders = {o.id: o for o in session.scalars(select(Order).where(
        Order.id.in_([e.order_id for e in waiting])))}
    waiting = [e for e in waiting if _still_wants(session, e, orders.get(e.order_id), now)]
    passed = {(o.entry_id, o.slot_id) for o in session.scalars(select(WaitlistOffer).where(
        WaitlistOffer.entry_id.in_([e.id for e in waiting]),
        WaitlistOffer.status.in_(("expired", "passed"))))}
    made: list[Offered] = []
    for region in sorted({e.region for e in waiting}):
        line = [e for e in waiting if e.region == region]
        latest = max(e.before for e in line)
        slots = session.scalars(select(CapacitySlot).where(
            CapacitySlot.region == region, CapacitySlot.start > earliest,
            CapacitySlot.start < latest,
            CapacitySlot.booked + CapacitySlot.held < CapacitySlot.capacity)
            .order_by(CapacitySlot.start, CapacitySlot.id))
        for slot in slots:
            for entry in list(line):
                order = orders[entry.order_id]
                if not _fits(entry, order, slot) or (entry.id, slot.id) in passed:
                    continue
                if not may_offer(entry, order):
                    continue
                if not _hold_place(session, slot.id):
                    break  # the slot filled meanwhile (a booking in another transaction)
                offer = WaitlistOffer(entry_id=entry.id, slot_id=slot.id, status="held",
                                      offered_at=now, expires_at=now + hold)
                session.add(offer)
                entry.status = WaitlistStatus.OFFERED
                line.remove(entry)
                session.flush()
                made.append(Offered(offer, entry, order, slot))
                session.refresh(slot)
                if slot.booked + slot.held >= slot.capacity:
                    break
    return made


def _still_wants(session: Session, entry: WaitlistEntry, order: Order | None,
                 now: datetime) -> bool:
    """End the entries whose visit ended or already moved early enough."""
    if order is None or order.status not in ACTIVE_STATUSES or order.window_start is None:
        _end_entry(session, entry, WaitlistStatus.LEFT, now)
        return False
    if order.window_start <= now:
        _end_entry(session, entry, WaitlistStatus.LEFT, now)
        return False
    return True


def _fits(entry: WaitlistEntry, order: Order, slot: CapacitySlot) -> bool:
    if order.window_start is None or slot.start >= min(entry.before, order.window_start):
        return False
    if slot.id == order.slot_id:
        return False
    if entry.part is not None:
        low, high = PARTS[entry.part]
        hour = slot.start.astimezone(ZoneInfo(order.timezone)).hour
        return low <= hour < high
    return True


def _hold_place(session: Session, slot_id: int) -> bool:
    result = session.execute(
        update(CapacitySlot).where(
            CapacitySlot.id == slot_id,
            CapacitySlot.booked + CapacitySlot.held < CapacitySlot.capacity)
        .values(held=CapacitySlot.held + 1).execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _held_offer(session: Session, offer_id: int, order_id: int, now: datetime) -> WaitlistOffer:
    offer = session.scalar(select(WaitlistOffer).join(
        WaitlistEntry, WaitlistEntry.id == WaitlistOffer.entry_id).where(
        and_(WaitlistOffer.id == offer_id, WaitlistEntry.order_id == order_id,
             WaitlistOffer.status == "held", WaitlistOffer.expires_at > now)))
    if offer is None:
        raise HoldGone(str(offer_id))
    return offer


def take(session: Session, *, offer_id: int, order_id: int, now: datetime) -> Order:
    """Book the held place for its customer: the old window freed, all or nothing."""
    offer = _held_offer(session, offer_id, order_id, now)
    # The status changes first, conditionally: of two taps, or a tap and the expiry, one wins.
    won = session.execute(update(WaitlistOffer).where(
        WaitlistOffer.id == offer.id, WaitlistOffer.status == "held")
        .values(status="taken", ended_at=now).execution_options(synchronize_session=False))
    if not won.rowcount:  # type: ignore[attr-defined]
        raise HoldGone(str(offer_id))
    order = book_slot(session, order_id=order_id, slot_id=offer.slot_id, changed_by="customer",
                      reason="an earlier window from the waitlist", now=now, held=True)
    entry = session.get(WaitlistEntry, offer.entry_id)
    if entry is not None:
        entry.status, entry.ended_at = WaitlistStatus.DONE, now
    return order


def pass_on(session: Session, *, offer_id: int, order_id: int, now: datetime) -> None:
    """The customer does not want the held place: it goes to the next who waits."""
    offer = _held_offer(session, offer_id, order_id, now)
    _release(session, offer, "passed", now)
    _back_in_line(session, offer, now)
