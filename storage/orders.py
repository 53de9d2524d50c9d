"""Orders, customers, appointment windows, events and ETAs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from storage.errors import OrderNotFound
from storage.history import record_visit
from storage.models import (
    EARLIEST,
    AppointmentChange,
    Base,
    CapacitySlot,
    Customer,
    Order,
    OrderEvent,
    OrderStatus,
)

EVENT_TYPES = ("en_route", "eta", "arrived", "completed", "cancelled", "no_show")
# An event moves the order into this status; "eta" changes only the estimate.
_STATUS_AFTER_EVENT = {
    "en_route": OrderStatus.EN_ROUTE,
    "arrived": OrderStatus.ARRIVED,
    "completed": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
    "no_show": OrderStatus.NO_SHOW,
}


@dataclass(frozen=True)
class CustomerFields:
    """What the dispatch system tells about a customer."""

    name: str
    postal_code: str
    language: str | None = None
    phone: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class AddressFields:
    """Where the visit takes place."""

    street: str
    postal_code: str
    city: str
    lat: float | None = None
    lon: float | None = None


def mark_for_decision(order: Order) -> None:
    """Have the order's pushes decided at the next tick: something about it changed."""
    order.decide_after = EARLIEST


def get_order(session: Session, *, number: str) -> Order | None:
    """Return the order with this number, or None."""
    return session.scalar(select(Order).where(Order.number == number))


def get_order_by_id(session: Session, *, order_id: int) -> Order | None:
    """Return the order with this id, or None."""
    return session.get(Order, order_id)


def orders_by_ids(session: Session, *, order_ids: list[int]) -> dict[int, Order]:
    """Return the orders with these ids (missing ones left out), in one query per 500."""
    found: dict[int, Order] = {}
    for chunk in _chunks(order_ids):
        found.update((o.id, o) for o in session.scalars(select(Order).where(Order.id.in_(chunk))))
    return found


def require_order(session: Session, *, number: str) -> Order:
    """Return the order with this number or raise OrderNotFound."""
    order = get_order(session, number=number)
    if order is None:
        raise OrderNotFound(number)
    return order


def lock_order(session: Session, *, order_id: int) -> Order:
    """Return the order, row-locked until the transaction ends (PostgreSQL)."""
    order = session.scalar(
        select(Order).where(Order.id == order_id).with_for_update(of=Order)
    )
    if order is None:
        raise OrderNotFound(str(order_id))
    return order


def upsert_order(
    session: Session,
    *,
    number: str,
    customer: CustomerFields,
    address: AddressFields,
    window: tuple[datetime, datetime] | None,
    technician_id: str | None,
    region: str | None,
    timezone: str | None,
    monthly_fee_cents: int | None = None,
    job_type: str | None = None,
    default_language: str = "de",
    default_timezone: str = "Europe/Berlin",
    now: datetime,
) -> tuple[Order, bool]:
    """Create or update an order from the dispatch system; return it and whether it is new."""
    order = get_order(session, number=number)
    created = order is None
    if order is None:
        person = _find_customer(session, customer)
        if person is None:
            person = Customer(
                name=customer.name,
                postal_code=customer.postal_code,
                language=customer.language or default_language,
                phone=customer.phone,
                external_id=customer.external_id,
                created_at=now,
            )
            session.add(person)
        order = Order(number=number, customer=person, status=OrderStatus.UNSCHEDULED,
                      created_at=now, updated_at=now)
        session.add(order)
    person = order.customer
    person.name = customer.name
    person.postal_code = customer.postal_code
    person.phone = customer.phone
    if customer.language:
        person.language = customer.language
    order.street = address.street
    order.postal_code = address.postal_code
    order.city = address.city
    order.lat = address.lat
    order.lon = address.lon
    order.technician_id = technician_id
    if region:
        order.region = region
    elif created:
        order.region = "default"
    if timezone:
        order.timezone = timezone
    elif created:
        order.timezone = default_timezone
    if monthly_fee_cents is not None:
        order.monthly_fee_cents = monthly_fee_cents
    if job_type is not None:
        order.job_type = job_type
    mark_for_decision(order)
    session.flush()
    if window is not None and (order.window_start, order.window_end) != window:
        set_window_by_operator(session, order=order, start=window[0], end=window[1], now=now)
    return order, created


def _find_customer(session: Session, fields: CustomerFields) -> Customer | None:
    if not fields.external_id:
        return None
    return session.scalar(select(Customer).where(Customer.external_id == fields.external_id))


def set_window_by_operator(
    session: Session,
    *,
    order: Order,
    start: datetime,
    end: datetime,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Set the booked window as the dispatcher decided, keeping slot counts and history right."""
    # The dispatcher is the authority: a matching slot is counted even beyond its capacity.
    slot = session.scalar(
        select(CapacitySlot).where(
            CapacitySlot.region == order.region,
            CapacitySlot.start == start,
            CapacitySlot.end == end,
        )
    )
    if order.slot_id is not None and (slot is None or slot.id != order.slot_id):
        _release_slot(session, slot_id=order.slot_id)
    if slot is not None and slot.id != order.slot_id:
        session.execute(
            update(CapacitySlot)
            .where(CapacitySlot.id == slot.id)
            .values(booked=CapacitySlot.booked + 1)
        )
    record_window_change(
        session, order=order, start=start, end=end, changed_by="operator", reason=reason,
        now=now,
    )
    order.slot_id = slot.id if slot is not None else None
    if order.status in (OrderStatus.UNSCHEDULED, OrderStatus.NO_SHOW, OrderStatus.CANCELLED):
        order.status = OrderStatus.SCHEDULED
    order.eta = None
    order.eta_reported_at = None
    session.flush()


def _release_slot(session: Session, *, slot_id: int) -> None:
    session.execute(
        update(CapacitySlot)
        .where(CapacitySlot.id == slot_id, CapacitySlot.booked > 0)
        .values(booked=CapacitySlot.booked - 1)
    )


def record_window_change(
    session: Session,
    *,
    order: Order,
    start: datetime | None,
    end: datetime | None,
    changed_by: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Move the order's window and keep the change in its history."""
    session.add(
        AppointmentChange(
            order_id=order.id,
            old_start=order.window_start,
            old_end=order.window_end,
            new_start=start,
            new_end=end,
            changed_by=changed_by,
            reason=reason,
            at=now,
        )
    )
    order.window_start = start
    order.window_end = end
    mark_for_decision(order)


def appointment_history(session: Session, *, order_id: int) -> list[AppointmentChange]:
    """Return every change of the order's window, oldest first."""
    return list(
        session.scalars(
            select(AppointmentChange)
            .where(AppointmentChange.order_id == order_id)
            .order_by(AppointmentChange.at, AppointmentChange.id)
        )
    )


def cancel_order(
    session: Session, *, order: Order, changed_by: str, reason: str | None, now: datetime
) -> None:
    """Cancel the visit, free its slot and keep the change in the history."""
    if order.slot_id is not None:
        _release_slot(session, slot_id=order.slot_id)
        order.slot_id = None
    record_window_change(
        session, order=order, start=None, end=None, changed_by=changed_by, reason=reason, now=now
    )
    order.status = OrderStatus.CANCELLED
    # The operator's reason is told to the customer; the customer's own stays in the history.
    order.status_reason = reason if changed_by != "customer" else None
    order.eta = None
    mark_for_decision(order)
    session.flush()


def record_event(
    session: Session,
    *,
    order: Order,
    type: str,
    at: datetime,
    eta: datetime | None,
    reason: str | None,
    now: datetime,
) -> OrderEvent:
    """Store a dispatch event and apply it to the order."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = OrderEvent(order_id=order.id, type=type, at=at, eta=eta, reason=reason,
                       received_at=now)
    session.add(event)
    if type == "cancelled":
        cancel_order(session, order=order, changed_by="operator", reason=reason, now=now)
    elif type in _STATUS_AFTER_EVENT:
        order.status = _STATUS_AFTER_EVENT[type]
        order.status_reason = reason
    if type == "en_route":
        order.departed_at = at
    if type in ("en_route", "eta") and eta is not None:
        order.eta = eta
        order.eta_reported_at = at
        if reason:
            order.status_reason = reason
    if type == "arrived":
        order.arrived_at = at
        order.eta = None
    if type == "completed":
        order.finished_at = at
        order.arrived_at = order.arrived_at or at
    if type == "no_show":
        order.finished_at = at  # the technician left: the route goes on from here
    mark_for_decision(order)
    session.flush()
    if type == "completed":
        record_visit(session, order=order)
    return event


def order_events(session: Session, *, order_id: int) -> list[OrderEvent]:
    """Return the order's events, oldest first."""
    return list(
        session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
        )
    )


def orders_due(session: Session, *, now: datetime, limit: int) -> list[Order]:
    """Return (and, on PostgreSQL, lock) orders whose decision fell due, oldest due first.

    SKIP LOCKED: an order another worker is deciding, or a dispatch event is changing right
    now, is left to them; the event's own decision follows its commit.
    """
    query = (select(Order).where(Order.decide_after <= now)
             .order_by(Order.decide_after, Order.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Order)
    return list(session.scalars(query))


def schedule_decisions(session: Session, *, when: dict[int, datetime | None]) -> None:
    """Set when each order is next decided (None: only when something changes)."""
    if not when:
        return
    # One statement for the batch; updated_at stays: a decision is no change of the order.
    table = Base.metadata.tables["orders"]
    session.connection().execute(
        update(table).where(table.c.id == bindparam("order_id"))
        .values(decide_after=bindparam("moment")),
        [{"order_id": order_id, "moment": moment} for order_id, moment in when.items()])


def next_decision_at(session: Session) -> datetime | None:
    """Return the earliest moment any order is due to be decided."""
    return session.scalar(select(Order.decide_after).where(Order.decide_after.is_not(None))
                          .order_by(Order.decide_after).limit(1))


def orders_booked_between(session: Session, *, start: datetime, end: datetime) -> list[Order]:
    """Return the visits still to come (scheduled or on the way) booked to start in the range."""
    return list(session.scalars(select(Order).where(
        Order.status.in_([OrderStatus.SCHEDULED, OrderStatus.EN_ROUTE]),
        Order.window_start >= start, Order.window_start <= end).order_by(Order.id)))


def changes_of_orders(
    session: Session, *, order_ids: list[int]
) -> dict[int, list[AppointmentChange]]:
    """Return every order's window changes, oldest first, in one query per 500 orders."""
    found: dict[int, list[AppointmentChange]] = {i: [] for i in order_ids}
    for chunk in _chunks(order_ids):
        for change in session.scalars(select(AppointmentChange).where(
                AppointmentChange.order_id.in_(chunk)).order_by(AppointmentChange.id)):
            found[change.order_id].append(change)
    return found


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]
