"""Decide the due pushes of the watched orders and put them into the outbox."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.services import Services
from bot.settings import Settings
from dialogues.due import Change, OrderFacts, PushRules, SentPush, due_pushes
from dialogues.model import Prediction
from dialogues.prediction import Position, PredictionRules, Stop, predict_route
from storage.chats import chats_of_orders
from storage.db import transaction
from storage.models import Order, OrderStatus
from storage.orders import changes_of_orders, orders_by_ids, orders_to_watch
from storage.outbox import enqueue, pushes_of_orders
from storage.technicians import RouteView, get_technician, routes_of_orders

log = logging.getLogger(__name__)


def push_rules(settings: Settings) -> PushRules:
    """Turn the push settings into the decision's rules."""
    pushes = settings.pushes
    return PushRules(
        reminder_local_time=pushes.reminder_local_time,
        quiet_start=pushes.quiet_hours_start, quiet_end=pushes.quiet_hours_end,
        eta_near=timedelta(minutes=pushes.eta_near_minutes),
        delay_threshold=timedelta(minutes=pushes.delay_threshold_minutes),
        delay_min_interval=timedelta(minutes=pushes.delay_min_interval_minutes),
        narrowed_ratio=pushes.narrowed_ratio,
    )


def prediction_rules(settings: Settings) -> PredictionRules:
    """Turn the prediction settings into the model's rules."""
    prediction = settings.prediction
    return PredictionRules(road_factor=prediction.road_factor,
                           urban_speed_kmh=prediction.urban_speed_kmh,
                           minutes_per_stop_ahead=prediction.window_minutes_per_stop_ahead,
                           min_half_minutes=prediction.window_min_half_minutes)


def predictions(session: Session, routes: list[RouteView], *, settings: Settings,
                now: datetime) -> dict[int, Prediction]:
    """Predict the remaining stops of every route, keyed by order id."""
    rules = prediction_rules(settings)
    found: dict[int, Prediction] = {}
    for route in routes:
        technician = get_technician(session, technician_id=route.technician_id)
        position = (Position(technician.lat, technician.lon, technician.position_at)
                    if technician and technician.lat is not None and technician.lon is not None
                    and technician.position_at is not None else None)
        stops = [Stop(order_id=order.id, planned_minutes=stop.planned_minutes,
                      window_start=order.window_start, lat=order.lat, lon=order.lon,
                      arrived_at=order.arrived_at, finished_at=order.finished_at,
                      eta=order.eta,
                      cancelled=order.status in (OrderStatus.CANCELLED, OrderStatus.NO_SHOW))
                 for stop, order in route.stops]
        if route.day != now.date() and route.day != (now + timedelta(hours=12)).date():
            continue  # a route of another day predicts nothing about today
        found.update(predict_route(stops, now=now, position=position, rules=rules))
    return found


def prediction_of(order: Order, predicted: dict[int, Prediction], *,
                  settings: Settings) -> Prediction | None:
    """Return the route's prediction for the order, or one around the dispatcher's bare ETA."""
    if order.status not in ("scheduled", "en_route"):
        return None
    found = predicted.get(order.id)
    if found is None and order.eta is not None:
        half = timedelta(minutes=settings.prediction.window_min_half_minutes)
        return Prediction(eta=order.eta, window_start=order.eta - half,
                          window_end=order.eta + half)
    return found


def _facts(order: Order, changes: list[Change], sent: list[SentPush],
           notifications_enabled: bool) -> OrderFacts:
    return OrderFacts(
        order_id=order.id, status=order.status, timezone=order.timezone,
        window_start=order.window_start, window_end=order.window_end,
        notifications_enabled=notifications_enabled, arrived_at=order.arrived_at,
        finished_at=order.finished_at, status_reason=order.status_reason,
        eta_reported=order.eta is not None, changes=tuple(changes), sent=tuple(sent))


def decide(services: Services, *, now: datetime, order_ids: list[int] | None = None) -> int:
    """Enqueue every push that fell due (for these orders, or all watched ones); count them."""
    settings = services.settings
    rules = push_rules(settings)
    with transaction(services.sessions) as session:
        if order_ids is None:
            orders = orders_to_watch(session, now=now)
        else:
            orders = list(orders_by_ids(session, order_ids=order_ids).values())
        ids = [o.id for o in orders]
        changes = changes_of_orders(session, order_ids=ids)
        pushes = pushes_of_orders(session, order_ids=ids)
        chats = chats_of_orders(session, order_ids=ids)
        predicted = predictions(session, routes_of_orders(session, order_ids=ids),
                                settings=settings, now=now)
        enqueued = 0
        for order in orders:
            facts = _facts(
                order,
                [Change(c.id, c.changed_by, c.new_start, c.new_end, c.at)
                 for c in changes[order.id]],
                [SentPush(p.kind, p.dedupe_key, p.payload, p.created_at)
                 for p in pushes[order.id]],
                notifications_enabled=any(c.notifications_enabled for c in chats[order.id])
                if chats[order.id] else True,
            )
            prediction = prediction_of(order, predicted, settings=settings)
            for push in due_pushes(facts, prediction, now, rules):
                enqueued += enqueue(session, order_id=order.id, kind=push.kind,
                                    dedupe_key=push.dedupe_key, payload=push.payload, now=now)
    if enqueued:
        log.info("%d pushes fell due", enqueued)
    return enqueued
