"""What the arrival model learns from: finished visits, and its own forecasts against arrivals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.models import ArrivalForecast, Order, OrderEvent, RouteStop, VisitHistory


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle distance in km (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60


def record_visit(session: Session, *, order: Order) -> VisitHistory | None:
    """Keep a finished visit's job and drive times for learning; None if it cannot teach."""
    if order.arrived_at is None or order.finished_at is None or order.technician_id is None:
        return None
    zone = ZoneInfo(order.timezone)
    day = order.arrived_at.astimezone(zone).date()
    route = list(session.execute(
        select(RouteStop, Order).join(Order, Order.id == RouteStop.order_id)
        .where(RouteStop.technician_id == order.technician_id, RouteStop.day == day)
        .order_by(RouteStop.position)).all())
    place = next((i for i, (stop, _) in enumerate(route) if stop.order_id == order.id), None)
    if place is None:
        return None  # not on a route of its day: no planned minutes to learn against
    planned = route[place][0].planned_minutes
    before = [o for _, o in route[:place] if o.finished_at is not None
              and o.finished_at <= order.arrived_at]
    drive = km = hour = start = None
    if before:
        previous = before[-1]
        assert previous.finished_at is not None
        # A technician who arrives the moment the window opens may have waited for it: that
        # leg says nothing about driving. It is kept only if the window was open at departure.
        if order.window_start is None or order.window_start <= previous.finished_at:
            drive = _minutes(order.arrived_at - previous.finished_at)
            hour = previous.finished_at.astimezone(zone).hour
            if None not in (previous.lat, previous.lon, order.lat, order.lon):
                km = _km((previous.lat, previous.lon), (order.lat, order.lon))  # type: ignore[arg-type]
    elif order.departed_at is not None:
        local = order.departed_at.astimezone(zone)
        start = local.hour * 60 + local.minute
    eta_error = eta_horizon = None
    told = session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order.id, OrderEvent.type.in_(
            ("eta", "en_route")), OrderEvent.eta.is_not(None),
            OrderEvent.at <= order.arrived_at).order_by(OrderEvent.at.desc(),
                                                         OrderEvent.id.desc()).limit(1)).first()
    if told is not None and told.eta is not None:
        eta_error = _minutes(told.eta - order.arrived_at)
        eta_horizon = _minutes(told.eta - told.at)
    row = session.scalar(select(VisitHistory).where(VisitHistory.order_id == order.id))
    if row is None:
        row = VisitHistory(order_id=order.id)
        session.add(row)
    row.technician_id, row.day, row.job_type = order.technician_id, day, order.job_type
    row.planned_minutes = planned
    row.duration_minutes = _minutes(order.finished_at - order.arrived_at)
    row.drive_minutes, row.drive_km, row.drive_hour, row.start_minute = drive, km, hour, start
    row.eta_error_minutes, row.eta_horizon_minutes = eta_error, eta_horizon
    row.finished_at = order.finished_at
    session.flush()
    return row


@dataclass(frozen=True)
class Visit:
    """A finished visit, as plain values for the model."""

    technician_id: str
    day: date
    job_type: str | None
    planned_minutes: int
    duration_minutes: float
    drive_minutes: float | None
    drive_km: float | None
    drive_hour: int | None
    start_minute: int | None
    eta_error_minutes: float | None
    eta_horizon_minutes: float | None


def _visits(rows: list[VisitHistory]) -> list[Visit]:
    return [Visit(r.technician_id, r.day, r.job_type, r.planned_minutes, r.duration_minutes,
                  r.drive_minutes, r.drive_km, r.drive_hour, r.start_minute,
                  r.eta_error_minutes, r.eta_horizon_minutes) for r in rows]


def recent_visits(session: Session, *, before: datetime, limit: int) -> list[Visit]:
    """Return the newest finished visits (up to `limit`), newest first, finished before then."""
    return _visits(list(session.scalars(
        select(VisitHistory).where(VisitHistory.finished_at <= before)
        .order_by(VisitHistory.id.desc()).limit(limit))))


def visits_of_technician(session: Session, *, technician_id: str, before: datetime,
                         limit: int) -> list[Visit]:
    """Return the technician's newest finished visits, newest first."""
    return _visits(list(session.scalars(
        select(VisitHistory).where(VisitHistory.technician_id == technician_id,
                                   VisitHistory.finished_at <= before)
        .order_by(VisitHistory.id.desc()).limit(limit))))


def visits_of_day(session: Session, *, day: date, before: datetime) -> list[Visit]:
    """Return the visits finished so far on a day (today's traffic shows in their drives)."""
    return _visits(list(session.scalars(
        select(VisitHistory).where(VisitHistory.day == day, VisitHistory.finished_at <= before)
        .order_by(VisitHistory.id))))


def newest_visit_id(session: Session) -> int:
    """Return the id of the newest history row (0 when there is none)."""
    return session.scalar(select(VisitHistory.id).order_by(VisitHistory.id.desc()).limit(1)) or 0


@dataclass(frozen=True)
class Forecast:
    """A past forecast and the arrival it was about."""

    made_at: datetime
    low: datetime
    median: datetime
    high: datetime
    arrived_at: datetime
    ahead: int
    id: int = 0
    window_start: datetime | None = None  # the booked window's opening (nobody comes before)


def add_forecasts(session: Session, *,
                  rows: list[tuple[int, datetime, datetime, datetime, int]],
                  made_at: datetime) -> None:
    """Keep forecasts (order id, low, median, high, ahead) made now, to judge them later."""
    session.add_all(ArrivalForecast(order_id=order_id, made_at=made_at, low=low, median=median,
                                    high=high, ahead=ahead)
                    for order_id, low, median, high, ahead in rows)
    session.flush()


def resolved_forecasts(session: Session, *, before: datetime, limit: int,
                       arrived_after: datetime | None = None) -> list[Forecast]:
    """Return the newest forecasts whose visit has arrived (since `arrived_after`), newest first."""
    query = (select(ArrivalForecast.made_at, ArrivalForecast.low, ArrivalForecast.median,
                    ArrivalForecast.high, Order.arrived_at, ArrivalForecast.ahead,
                    ArrivalForecast.id, Order.window_start)
             .join(Order, Order.id == ArrivalForecast.order_id)
             .where(Order.arrived_at.is_not(None), Order.arrived_at <= before,
                    ArrivalForecast.made_at < Order.arrived_at))
    if arrived_after is not None:
        query = query.where(Order.arrived_at > arrived_after)
    rows = session.execute(query.order_by(ArrivalForecast.id.desc()).limit(limit)).all()
    return [Forecast(made_at, low, median, high, arrived_at, ahead, forecast_id, opens)
            for made_at, low, median, high, arrived_at, ahead, forecast_id, opens in rows
            if arrived_at is not None]


def forget_forecasts(session: Session, *, before: datetime) -> None:
    """Delete forecasts made before then (they have taught what they can)."""
    session.execute(delete(ArrivalForecast).where(ArrivalForecast.made_at < before))
