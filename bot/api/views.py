"""The order as the bot sees it, as JSON for the ops API."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import handoffs
from bot.arrivals import predict_for_order
from bot.services import Services
from bot.waitlist import waitlist_json
from storage.models import Handoff, Notification, Order
from storage.orders import appointment_history, get_order_by_id
from storage.records import notes_of_order
from storage.technicians import routes_of_orders


def _iso(value: datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def order_json(
    session: Session, *, order: Order, services: Services, now: datetime
) -> dict[str, Any]:
    """Return the order's state, window, route place, notes and pushes, times in its zone."""
    zone = ZoneInfo(order.timezone)
    routes = routes_of_orders(session, order_ids=[order.id])  # read once: place and prediction
    route = routes[0] if routes else None
    stop = None
    if route is not None:
        position = next(i for i, (s, _) in enumerate(route.stops, 1) if s.order_id == order.id)
        stop = {"technician": route.technician_id, "day": route.day.isoformat(),
                "position": position, "of": len(route.stops)}
    notifications = session.scalars(
        select(Notification).where(Notification.order_id == order.id).order_by(Notification.id)
    )
    predicted = predict_for_order(session, order=order, services=services, now=now,
                                  routes=routes)
    return {
        "number": order.number,
        "status": order.status,
        "status_reason": order.status_reason,
        "timezone": order.timezone,
        "region": order.region,
        "language": order.customer.language,
        "booked_window": {"start": _iso(order.window_start, zone),
                          "end": _iso(order.window_end, zone)}
        if order.window_start else None,
        "moves": order.moves,
        "technician": {"id": order.technician.id, "name": order.technician.name}
        if order.technician else None,
        "eta": _iso(order.eta, zone),
        "job_type": order.job_type,
        "predicted": {"eta": _iso(predicted.eta, zone),
                      "window": {"start": _iso(predicted.window_start, zone),
                                 "end": _iso(predicted.window_end, zone)},
                      "late_probability": round(predicted.late, 3)}
        if predicted else None,
        "eta_reported_at": _iso(order.eta_reported_at, zone),
        "arrived_at": _iso(order.arrived_at, zone),
        "finished_at": _iso(order.finished_at, zone),
        "route_stop": stop,
        "notes": [{"text": n.text, "at": _iso(n.created_at, zone)}
                  for n in notes_of_order(session, order_id=order.id)],
        "history": [
            {"from": {"start": _iso(c.old_start, zone), "end": _iso(c.old_end, zone)},
             "to": {"start": _iso(c.new_start, zone), "end": _iso(c.new_end, zone)},
             "by": c.changed_by, "reason": c.reason, "at": _iso(c.at, zone)}
            for c in appointment_history(session, order_id=order.id)
        ],
        "waitlist": waitlist_json(session, order=order, zone=zone),
        "notifications": [
            {"kind": n.kind, "status": n.status, "attempts": n.attempts,
             "created_at": _iso(n.created_at, zone), "sent_at": _iso(n.sent_at, zone)}
            for n in notifications
        ],
    }


def handoff_json(session: Session, *, handoff: Handoff, services: Services) -> dict[str, Any]:
    """Return one handoff with its transcript, its order as GET order shows it, the customer."""
    order = get_order_by_id(session, order_id=handoff.order_id) if handoff.order_id else None
    view = order_json(session, order=order, services=services,
                      now=services.clock()) if order else None
    return handoffs.detail(session, services, handoff=handoff, order_view=view)
