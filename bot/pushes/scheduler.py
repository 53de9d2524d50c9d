"""The APScheduler tick: decide due pushes every N seconds, then wake the sender."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from starlette.concurrency import run_in_threadpool

from bot.handoffs import tell_overdue
from bot.pushes.decide import decide, push_rules
from bot.services import Services
from bot.waitlist import run_waitlist

log = logging.getLogger(__name__)


def build_scheduler(services: Services, *, wake_sender: Callable[[], None],
                    order_ids: list[int] | None = None) -> AsyncIOScheduler:
    """Hold one interval job in memory; all durable state lives in the database.

    APScheduler 3 cannot share a job store between processes (duplicate or missed runs), so
    every worker runs its own tick, and the outbox's dedupe keys and row claiming make any
    number of them safe.
    """

    async def tick() -> None:
        try:
            now = services.clock()
            enqueued = await run_in_threadpool(decide, services, now=now, order_ids=order_ids)
            enqueued += await run_in_threadpool(tell_overdue, services, now=now)
            enqueued += await run_in_threadpool(run_waitlist, services, now=now,
                                                rules=push_rules(services.settings))
        except asyncio.CancelledError:
            # The service stops mid-tick: what the tick committed stays, the rest is decided
            # at the next start. Not an error, and no traceback for an ordinary stop.
            log.info("push tick interrupted by the stop")
            return
        except Exception:
            log.exception("the push tick failed; the next one tries again")
            services.metrics.errors.labels("scheduler").inc()
            return
        if enqueued:
            wake_sender()

    scheduler = AsyncIOScheduler(timezone="UTC")
    # Two jobs of one function: named apart, or their log lines read like one line twice.
    scheduler.add_job(tick, "interval", seconds=services.settings.scheduler.tick_seconds,
                      id="push-tick", name="push tick", coalesce=True, max_instances=1)
    scheduler.add_job(tick, id="push-tick-at-start",  # once right away, then every N seconds
                      name="first push tick")
    return scheduler
