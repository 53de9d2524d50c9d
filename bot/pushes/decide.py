"""Decide the due pushes of the watched orders and put them into the outbox."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.arrivals import prediction_of, predictions
from bot.services import Services
from bot.settings import Settings
from dialogues.due import Change, OrderFacts, PushRules, SentPush, due_pushes
from storage.chats import chats_of_orders
from storage.db import transaction
from storage.models import Order
from storage.orders import changes_of_orders, orders_by_ids, orders_to_watch
from storage.outbox import enqueue, pushes_of_orders
from storage.technicians import routes_of_orders

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
