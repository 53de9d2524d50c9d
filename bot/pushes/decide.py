"""Decide the due pushes of the watched orders and put them into the outbox."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.arrivals import prediction_of, predictions
from bot.services import Services
from bot.settings import Settings
from dialogues.due import Change, OrderFacts, PushRules, SentPush, decide_order
from storage.chats import chats_of_orders
from storage.db import transaction
from storage.models import Order
from storage.orders import changes_of_orders, orders_by_ids, orders_due, schedule_decisions
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
        delay_probability_near=pushes.delay_probability_near,
        delay_probability_far=pushes.delay_probability_far,
        delay_near=timedelta(minutes=pushes.delay_near_minutes),
        delay_far=timedelta(minutes=pushes.delay_far_minutes),
    )


def _facts(order: Order, changes: list[Change], sent: list[SentPush],
           notifications_enabled: bool) -> OrderFacts:
    return OrderFacts(
        order_id=order.id, status=order.status, timezone=order.timezone,
        window_start=order.window_start, window_end=order.window_end,
        notifications_enabled=notifications_enabled, arrived_at=order.arrived_at,
        finished_at=order.finished_at, status_reason=order.status_reason,
        eta_reported=order.eta is not None, changes=tuple(changes), sent=tuple(sent))


BATCH = 2_000  # orders decided per transaction


def decide(services: Services, *, now: datetime, order_ids: list[int] | None = None) -> int:
    """Enqueue every push that fell due (for these orders, or all due ones); count them."""
    if order_ids is not None:
        return _decide_batch(services, now, order_ids)[0]
    enqueued, more = 0, True
    while more and not services.stopping.is_set():  # a full batch: more may be due
        count, more = _decide_batch(services, now, None)
        enqueued += count
    if enqueued:
        log.info("%d pushes fell due", enqueued)
    return enqueued


def _decide_batch(services: Services, now: datetime, order_ids: list[int] | None
                  ) -> tuple[int, bool]:
    """Decide one batch; return the pushes enqueued and whether more due orders may wait."""
    settings = services.settings
    rules = push_rules(settings)
    with transaction(services.sessions) as session:
        if order_ids is None:
            orders = orders_due(session, now=now, limit=BATCH)
        else:
            orders = list(orders_by_ids(session, order_ids=order_ids).values())
        ids = [o.id for o in orders]
        changes = changes_of_orders(session, order_ids=ids)
        pushes = pushes_of_orders(session, order_ids=ids)
        chats = chats_of_orders(session, order_ids=ids)
        predicted = predictions(session, routes_of_orders(session, order_ids=ids),
                                services=services, now=now, record=True)
        enqueued, schedule = 0, {}
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
            decision = decide_order(facts, prediction_of(order, predicted, settings=settings),
                                    now, rules)
            for push in decision.pushes:
                enqueued += enqueue(session, order_id=order.id, kind=push.kind,
                                    dedupe_key=push.dedupe_key, payload=push.payload, now=now)
            schedule[order.id] = decision.next_at
        schedule_decisions(session, when=schedule)
    return enqueued, order_ids is None and len(orders) == BATCH
