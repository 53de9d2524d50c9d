"""The demo's fast clock: fast through the day, real time while the customer reads a question."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import IO, cast

from sqlalchemy.orm import Session, sessionmaker

from bot.channels.terminal import chat_loop
from bot.services import Services
from bot.simulation import FastClock
from nlu.client import NluClient
from nlu.types import Parsed
from storage.db import transaction
from storage.models import CapacitySlot, Order
from tests.conftest import NOW
from tests.factories import make_order, make_slots, make_technician


class FakeMonotonic:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_clock_runs_fast_slows_while_a_question_is_open_and_speeds_up_after() -> None:
    wall = FakeMonotonic()
    clock = FastClock(start=NOW, speed=360, monotonic=wall)
    wall.now += 10
    assert clock() == NOW + timedelta(hours=1)
    clock.set_question_open(True)
    assert clock() == NOW + timedelta(hours=1)  # no jump when the speed changes
    wall.now += 60
    assert clock() == NOW + timedelta(hours=1, minutes=1)
    clock.set_question_open(True)  # a second question while one is open: still real time
    wall.now += 60
    assert clock() == NOW + timedelta(hours=1, minutes=2)
    clock.set_question_open(False)
    wall.now += 10
    assert clock() == NOW + timedelta(hours=2, minutes=2)


class ReadingCustomer:
    """Piped lines, each typed after the customer read for a while (on the fake clock)."""

    def __init__(self, text: str, wall: FakeMonotonic, seconds: float) -> None:
        self.lines = io.StringIO(text)
        self.wall, self.seconds = wall, seconds

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        self.wall.now += self.seconds
        return self.lines.readline()


class WishToMove:
    """An NLU that hears every text as the wish to move the visit."""

    async def parse(self, text: str, *, current_language: str | None = None,
                    hint: str | None = None) -> Parsed:
        return Parsed("reschedule", 0.95, (), "en")


def test_an_offer_read_for_a_minute_still_holds_in_the_demo(
    services: Services, sessions: sessionmaker[Session]
) -> None:
    wall = FakeMonotonic()
    clock = FastClock(start=NOW, speed=360, monotonic=wall)
    services.clock = clock
    with transaction(sessions) as session:
        make_technician(session)
        for day in range(1, 4):
            make_slots(session, day=(NOW + timedelta(days=day)).date())
        first = session.query(CapacitySlot).order_by(CapacitySlot.start).first()
        assert first is not None
        order = make_order(session, number="40000001", window=(first.start, first.end),
                           technician_id="T-1", language="en")
        booked_before = order.window_start
    written: list[str] = []
    # A minute per line: six hours on the fast clock, far beyond the offer's 30 minutes.
    customer = ReadingCustomer("move it please\n2\n1\n", wall, seconds=60)
    code = asyncio.run(chat_loop(
        services, cast(NluClient, WishToMove()), order_number="40000001", language="en",
        lines=cast(IO[str], customer), write=written.append,
        on_question=clock.set_question_open))

    assert code == 0
    shown = "\n".join(written)
    assert "expired" not in shown
    assert "Done: your visit is now booked for" in shown
    with transaction(sessions) as session:
        moved = session.get(Order, order.id)
        assert moved is not None and moved.window_start != booked_before
    # A minute fast before the question, two slow while it was open, a fast one to the end.
    assert clock() == NOW + timedelta(hours=12, minutes=2)
