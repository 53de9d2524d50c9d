"""Slot capacity per region and day, and the atomic booking of a slot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from storage.errors import SlotNotFound, SlotTaken
from storage.models import CapacitySlot, Order, OrderStatus
from storage.orders import lock_order, record_window_change


@dataclass(frozen=True)
class SlotFields:
    """One window of a region's calendar and how many visits fit in it."""

    start: datetime
    end: datetime
    capacity: int


def put_capacity(
    session: Session, *, region: str, day: date, slots: list[SlotFields]
) -> list[CapacitySlot]:
    """Set the region's windows for a day; booked windows that vanish are closed, not lost."""
    existing = {
        (s.start, s.end): s
        for s in session.scalars(
            select(CapacitySlot).where(CapacitySlot.region == region, CapacitySlot.day == day)
        )
    }
    wanted = {(s.start, s.end): s for s in slots}
    for key, slot in existing.items():
        if key in wanted:
            continue
        if slot.booked + slot.held == 0:
            session.execute(delete(CapacitySlot).where(CapacitySlot.id == slot.id))
        else:
            slot.capacity = slot.booked + slot.held
    result = []
    for key, fields in wanted.items():
        found = existing.get(key)
        if found is None:
            slot = CapacitySlot(region=region, day=day, start=fields.start, end=fields.end,
                                capacity=fields.capacity, booked=0)
            session.add(slot)
        else:
            slot = found
            slot.capacity = fields.capacity
        result.append(slot)
    session.flush()
    return sorted(result, key=lambda s: s.start)


def free_slots(
    session: Session,
    *,
    region: str,
    after: datetime,
    until: datetime,
    limit: int,
    exclude_slot_id: int | None = None,
) -> list[CapacitySlot]:
    """Return the region's next windows with a free place, starting after `after`."""
    query = (
        select(CapacitySlot)
        .where(
            CapacitySlot.region == region,
            CapacitySlot.start > after,
            CapacitySlot.start < until,
            CapacitySlot.booked + CapacitySlot.held < CapacitySlot.capacity,
        )
        .order_by(CapacitySlot.start)
        .limit(limit)
    )
    if exclude_slot_id is not None:
        query = query.where(CapacitySlot.id != exclude_slot_id)
    return list(session.scalars(query))


def get_slot(session: Session, *, slot_id: int) -> CapacitySlot | None:
    """Return the slot with this id, or None."""
    return session.get(CapacitySlot, slot_id)


def book_slot(
    session: Session,
    *,
    order_id: int,
    slot_id: int,
    changed_by: str,
    reason: str | None,
    now: datetime,
    held: bool = False,
) -> Order:
    """Book the slot for the order if a place remains and free the old one, all or nothing.

    `held`: the place is one held for this order by a waitlist offer, not a free one.
    """
    with session.begin_nested():
        order = lock_order(session, order_id=order_id)
        if order.slot_id == slot_id:
            return order
        old_slot_id = order.slot_id
        # Touch the slot rows in id order so two moves in opposite directions cannot deadlock.
        for touched in sorted({slot_id} | ({old_slot_id} if old_slot_id is not None else set())):
            if touched == slot_id:
                _take_place(session, slot_id=slot_id, now=now, held=held)
            else:
                session.execute(
                    update(CapacitySlot)
                    .where(CapacitySlot.id == touched, CapacitySlot.booked > 0)
                    .values(booked=CapacitySlot.booked - 1)
                )
        slot = session.get(CapacitySlot, slot_id)
        assert slot is not None  # _take_place raised otherwise
        session.refresh(slot)
        record_window_change(
            session, order=order, start=slot.start, end=slot.end, changed_by=changed_by,
            reason=reason, now=now,
        )
        order.slot_id = slot_id
        order.moves = order.moves + 1 if changed_by == "customer" else order.moves
        if order.status in (OrderStatus.UNSCHEDULED, OrderStatus.CANCELLED, OrderStatus.NO_SHOW):
            order.status = OrderStatus.SCHEDULED
        order.eta = None
        order.eta_reported_at = None
        session.flush()
    return order


def _take_place(session: Session, *, slot_id: int, now: datetime, held: bool = False) -> None:
    # One conditional UPDATE: the database decides who gets the last place, on SQLite (write
    # lock) and PostgreSQL (row lock, WHERE re-checked after the wait) alike. A place held for
    # a waitlisted customer is theirs: nobody else's booking may take it.
    room = (CapacitySlot.held > 0 if held
            else CapacitySlot.booked + CapacitySlot.held < CapacitySlot.capacity)
    values = ({"booked": CapacitySlot.booked + 1, "held": CapacitySlot.held - 1} if held
              else {"booked": CapacitySlot.booked + 1})
    result = session.execute(
        update(CapacitySlot)
        .where(CapacitySlot.id == slot_id, room, CapacitySlot.start > now)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return
    if session.get(CapacitySlot, slot_id) is None:
        raise SlotNotFound(str(slot_id))
    raise SlotTaken(str(slot_id))
