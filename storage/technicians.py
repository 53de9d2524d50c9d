"""Technicians, their daily routes and their latest position."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session

from storage.errors import OrderNotFound, TechnicianNotFound
from storage.models import EARLIEST, Order, RouteStop, Technician


@dataclass(frozen=True)
class StopFields:
    """One visit of a route: which order and how long the technician plans to stay."""

    order_number: str
    planned_minutes: int


def upsert_technician(
    session: Session, *, technician_id: str, name: str, code_word: str | None
) -> tuple[Technician, bool]:
    """Create or update a technician; return it and whether it is new."""
    technician = session.get(Technician, technician_id)
    created = technician is None
    if technician is None:
        technician = Technician(id=technician_id)
        session.add(technician)
    technician.name = name
    technician.code_word = code_word
    session.flush()
    return technician, created


def get_technician(session: Session, *, technician_id: str) -> Technician | None:
    """Return the technician, or None."""
    return session.get(Technician, technician_id)


def technicians_by_ids(session: Session, *, technician_ids: list[str]) -> dict[str, Technician]:
    """Return these technicians by id, in one query per 500 (missing ones are left out)."""
    found: dict[str, Technician] = {}
    unique = sorted(set(technician_ids))
    for start in range(0, len(unique), 500):
        for technician in session.scalars(select(Technician).where(
                Technician.id.in_(unique[start:start + 500]))):
            found[technician.id] = technician
    return found


def set_route(
    session: Session, *, technician_id: str, day: date, stops: list[StopFields]
) -> list[RouteStop]:
    """Replace the technician's route for the day with these stops, in visiting order."""
    if session.get(Technician, technician_id) is None:
        raise TechnicianNotFound(technician_id)
    numbers = [s.order_number for s in stops]
    orders = {o.number: o for o in session.scalars(select(Order).where(Order.number.in_(numbers)))}
    missing = [n for n in numbers if n not in orders]
    if missing:
        raise OrderNotFound(", ".join(missing))
    if len(set(numbers)) != len(numbers):
        raise ValueError("an order appears twice in the route")
    # Visits that leave the route and visits that join it are decided again at the next tick.
    left = session.scalars(select(RouteStop.order_id).where(
        RouteStop.technician_id == technician_id, RouteStop.day == day)).all()
    session.execute(update(Order).where(Order.id.in_(left)).values(decide_after=EARLIEST)
                    .execution_options(synchronize_session=False))
    session.execute(
        delete(RouteStop).where(RouteStop.technician_id == technician_id, RouteStop.day == day)
    )
    result = []
    for position, stop in enumerate(stops, start=1):
        order = orders[stop.order_number]
        order.technician_id = technician_id
        order.decide_after = EARLIEST
        row = RouteStop(technician_id=technician_id, day=day, position=position,
                        order_id=order.id, planned_minutes=stop.planned_minutes)
        session.add(row)
        result.append(row)
    session.flush()
    return result


@dataclass(frozen=True)
class RouteView:
    """A technician's route for one day with the orders in visiting order."""

    technician_id: str
    day: date
    stops: list[tuple[RouteStop, Order]]


def route_of_order(session: Session, *, order_id: int) -> RouteView | None:
    """Return the latest-day route the order is a stop of, or None."""
    routes = routes_of_orders(session, order_ids=[order_id])
    return routes[0] if routes else None


def update_position(
    session: Session, *, technician_id: str, lat: float, lon: float, at: datetime
) -> bool:
    """Store the technician's position unless a newer one is known; say whether it was kept."""
    technician = session.get(Technician, technician_id)
    if technician is None:
        raise TechnicianNotFound(technician_id)
    if technician.position_at is not None and technician.position_at >= at:
        return False
    technician.lat, technician.lon, technician.position_at = lat, lon, at
    session.flush()
    return True


def routes_of_orders(session: Session, *, order_ids: list[int]) -> list[RouteView]:
    """Return the latest-day route of each order (shared routes once), in two queries."""
    days: dict[int, tuple[str, date]] = {}
    for start in range(0, len(order_ids), 500):
        for stop in session.scalars(select(RouteStop).where(
                RouteStop.order_id.in_(order_ids[start:start + 500]))):
            key = (stop.technician_id, stop.day)
            if stop.order_id not in days or days[stop.order_id][1] < stop.day:
                days[stop.order_id] = key
    wanted = sorted(set(days.values()))
    found: dict[tuple[str, date], list[tuple[RouteStop, Order]]] = {k: [] for k in wanted}
    for start in range(0, len(wanted), 200):
        rows = session.execute(
            select(RouteStop, Order).join(Order, Order.id == RouteStop.order_id)
            .where(tuple_(RouteStop.technician_id, RouteStop.day).in_(wanted[start:start + 200]))
            .order_by(RouteStop.technician_id, RouteStop.day, RouteStop.position)).all()
        for stop, order in rows:
            found[(stop.technician_id, stop.day)].append((stop, order))
    return [RouteView(technician_id, day, found[(technician_id, day)])
            for technician_id, day in wanted]
