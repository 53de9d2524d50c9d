"""The demo's technician day on an accelerated clock: events in, pushes out, as in real life."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool

from bot.pushes.decide import decide
from bot.pushes.sender import Sender
from bot.services import Services
from storage.db import transaction
from storage.orders import record_event, require_order

log = logging.getLogger(__name__)


@dataclass
class FastClock:
    """Simulated time from `start`, `speed` times the wall clock; real time while one reads.

    The demo day passes in minutes, but an offer (valid 30 minutes) would then expire in five
    seconds: while the customer has a question open the clock runs at real speed.
    """

    start: datetime
    speed: float
    monotonic: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _at: datetime = field(init=False)
    _t0: float = field(init=False)
    _rate: float = field(init=False)

    def __post_init__(self) -> None:
        self._at, self._t0, self._rate = self.start, self.monotonic(), self.speed

    def __call__(self) -> datetime:
        with self._lock:
            return self._at + timedelta(seconds=(self.monotonic() - self._t0) * self._rate)

    def set_question_open(self, question_open: bool) -> None:
        """Run at real speed while the customer has a question to answer; fast again after."""
        with self._lock:
            now = self.monotonic()
            self._at += timedelta(seconds=(now - self._t0) * self._rate)
            self._t0, self._rate = now, 1.0 if question_open else self.speed


def technician_day(window_start: datetime) -> list[tuple[datetime, str, datetime | None,
                                                         str | None]]:
    """The dispatcher's events for the demo visit: on the way, 50 minutes late, there, done."""
    return [
        (window_start - timedelta(minutes=25), "en_route", window_start + timedelta(minutes=40),
         None),
        (window_start - timedelta(minutes=10), "eta", window_start + timedelta(minutes=130),
         "Stau auf der A100"),
        (window_start + timedelta(minutes=110), "eta", window_start + timedelta(minutes=128),
         None),
        (window_start + timedelta(minutes=130), "arrived", None, None),
        (window_start + timedelta(minutes=190), "completed", None, None),
    ]


def demo_clock(services: Services, order_number: str, zone: str = "Europe/Berlin") -> FastClock:
    """Start the simulated clock at 17:58 the evening before the demo visit."""
    with transaction(services.sessions) as session:
        order = require_order(session, number=order_number)
        assert order.window_start is not None
        local = order.window_start.astimezone(ZoneInfo(zone))
    evening = (local - timedelta(days=1)).replace(hour=17, minute=58, second=0, microsecond=0)
    # Fast through the night, so the whole day passes in about three minutes.
    return FastClock(start=evening, speed=360)


async def play_day(services: Services, sender: Sender | None, order_number: str,
                   stop: asyncio.Event) -> None:
    """Apply the dispatcher's events as the simulated clock passes them; decide pushes."""
    def order_window() -> tuple[int, datetime]:
        with transaction(services.sessions) as session:
            order = require_order(session, number=order_number)
            assert order.window_start is not None
            return order.id, order.window_start

    order_id, window_start = await run_in_threadpool(order_window)
    pending = technician_day(window_start)

    def apply(now: datetime) -> None:
        while pending and pending[0][0] <= now:
            at, kind, eta, reason = pending.pop(0)
            with transaction(services.sessions) as session:
                order = require_order(session, number=order_number)
                if order.status in ("cancelled", "completed") or order.window_start != window_start:
                    pending.clear()  # the customer cancelled or moved: this day ends here
                    return
                record_event(session, order=order, type=kind, at=at, eta=eta, reason=reason,
                             now=now)
        decide(services, now=now, order_ids=[order_id])

    while not stop.is_set() and (pending or services.clock() < window_start + timedelta(hours=5)):
        await run_in_threadpool(apply, services.clock())
        if sender is not None:
            sender.wake.set()
        await asyncio.sleep(0.5)
