"""The waitlist: freed places held for those who waited longest, one each, passed on in order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.pushes.decide import push_rules
from bot.pushes.sender import Sender
from bot.services import Services
from bot.turns import run_turn
from bot.waitlist import run_waitlist
from dialogues.model import ButtonPress, Reply, TextMessage
from nlu.types import Entity, Parsed
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.errors import SlotTaken
from storage.models import AppointmentChange, CapacitySlot, Order, WaitlistEntry, WaitlistOffer
from storage.slots import SlotFields, book_slot, put_capacity
from tests.conftest import NOW
from tests.factories import make_order

WAITERS = 20
FREED = 5


@dataclass
class Clock:
    now: datetime = NOW + timedelta(hours=2)  # 10:00 in Berlin: no quiet hours

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Chats:
    prefix: str = "tg:"
    got: dict[str, list[Reply]] = field(default_factory=dict)

    async def deliver(self, chat_key: str, telegram_chat_id: int | None,
                      replies: tuple[Reply, ...]) -> None:
        self.got.setdefault(chat_key, []).extend(replies)


@dataclass
class World:
    waiters: list[tuple[int, str]]  # order id, chat key, in the order they joined
    leavers: list[tuple[int, str]]
    early: list[int]  # the five slot ids that free up
    late: int


def slot(day: int, hour: int) -> SlotFields:
    start = NOW.replace(hour=hour) + timedelta(days=day)
    return SlotFields(start, start + timedelta(hours=2), 0)


@pytest.fixture
def clock(services: Services) -> Clock:
    clock = Clock()
    services.clock = clock
    return clock


def customer(services: Services, n: int, window: tuple[datetime, datetime]) -> tuple[int, str]:
    with transaction(services.sessions) as session:
        order = make_order(session, number=f"5{n:07d}", window=window)
        link_chat(session, chat=ensure_chat(session, chat_key=f"tg:{n}", telegram_chat_id=n,
                                            now=NOW), order=order)
        return order.id, f"tg:{n}"


def book(services: Services, order_id: int, slot_id: int) -> None:
    with transaction(services.sessions) as session:
        book_slot(session, order_id=order_id, slot_id=slot_id, changed_by="operator",
                  reason=None, now=NOW)


@pytest.fixture
def world(services: Services, clock: Clock) -> World:
    with transaction(services.sessions) as session:
        early = put_capacity(session, region="berlin", day=(NOW + timedelta(days=1)).date(),
                             slots=[SlotFields(s.start, s.end, 1) for s in
                                    (slot(1, h) for h in (7, 9, 11, 13, 15))])
        late = put_capacity(session, region="berlin", day=(NOW + timedelta(days=6)).date(),
                            slots=[SlotFields(slot(6, 9).start, slot(6, 9).end, WAITERS)])[0]
        early_ids, late_id = [s.id for s in early], late.id
        late_window = (late.start, late.end)
    leavers = []
    for n, slot_id in enumerate(early_ids):
        leavers.append(customer(services, 900 + n, late_window))
        book(services, leavers[-1][0], slot_id)
    waiters = []
    for n in range(WAITERS):
        waiters.append(customer(services, 100 + n, late_window))
        book(services, waiters[-1][0], late_id)
        clock.now += timedelta(seconds=1)  # the order in which they asked
        replies = run_turn(services, chat_key=waiters[-1][1], order_id=waiters[-1][0],
                           incoming=ButtonPress("w:join"), fallback_language="de")
        assert "Warteliste" in replies[0].text or "waitlist" in replies[0].text
    return World(waiters, leavers, early_ids, late_id)


def tick(services: Services, clock: Clock) -> int:
    return run_waitlist(services, now=clock.now, rules=push_rules(services.settings))


def held(services: Services) -> dict[int, int]:
    """Return the order each held place is held for: slot id -> order id."""
    with transaction(services.sessions) as session:
        rows = session.execute(select(WaitlistOffer.slot_id, WaitlistEntry.order_id).join(
            WaitlistEntry, WaitlistEntry.id == WaitlistOffer.entry_id).where(
            WaitlistOffer.status == "held"))
        return {slot_id: order_id for slot_id, order_id in rows}


def cancel_all(services: Services, world: World) -> None:
    for order_id, chat_key in world.leavers:
        asked = run_turn(services, chat_key=chat_key, order_id=order_id,
                         incoming=TextMessage("stornieren", Parsed("cancel", 0.9, (), "de")),
                         fallback_language="de")
        run_turn(services, chat_key=chat_key, order_id=order_id,
                 incoming=ButtonPress(asked[-1].flat_buttons[0].payload),
                 fallback_language="de")


def test_five_freed_places_go_to_the_five_who_waited_longest_and_on_in_order(
    services: Services, clock: Clock, world: World
) -> None:
    assert tick(services, clock) == 0  # nothing free yet
    cancel_all(services, world)
    assert tick(services, clock) == FREED
    first = held(services)

    assert sorted(first.values()) == sorted(o for o, _ in world.waiters[:FREED])
    assert set(first) == set(world.early)
    assert tick(services, clock) == 0  # a held place is nobody else's
    # Nobody else's booking can take a held place.
    stranger = customer(services, 999, (slot(6, 9).start, slot(6, 9).end))
    with pytest.raises(SlotTaken):
        book(services, stranger[0], world.early[0])

    clock.now += timedelta(minutes=16)  # every hold runs out
    assert tick(services, clock) == FREED
    second = held(services)
    assert sorted(second.values()) == sorted(o for o, _ in world.waiters[FREED:2 * FREED])

    # The first of the second round takes its window with one tap, through the chat.
    chats = Chats()
    asyncio.run(Sender(services, [chats]).run_once())
    taker_order, taker_chat = world.waiters[FREED]
    offer = chats.got[taker_chat][-1]
    take = next(b.payload for b in offer.flat_buttons if b.payload.startswith("w:take:"))
    done = run_turn(services, chat_key=taker_chat, order_id=taker_order,
                    incoming=ButtonPress(take), fallback_language="de")
    assert "gebucht" in done[0].text
    again = run_turn(services, chat_key=taker_chat, order_id=taker_order,
                     incoming=ButtonPress(take), fallback_language="de")
    assert "gebucht" not in again[0].text  # a second tap books nothing

    clock.now += timedelta(minutes=16)
    tick(services, clock)
    with transaction(services.sessions) as session:
        for s in session.scalars(select(CapacitySlot)):
            assert 0 <= s.booked + s.held <= s.capacity, (s.id, s.booked, s.held, s.capacity)
            booked = session.scalar(select(func.count()).select_from(Order).where(
                Order.slot_id == s.id))
            assert booked == s.booked  # the counts match the orders: no double booking
        taker = session.get(Order, taker_order)
        assert taker.slot_id in world.early and taker.moves == 1
        moved = session.scalars(select(AppointmentChange).where(
            AppointmentChange.order_id == taker_order).order_by(AppointmentChange.id)).all()
        assert moved[-1].reason == "an earlier window from the waitlist"
        assert moved[-1].old_start == slot(6, 9).start
        assert session.scalar(select(WaitlistEntry.status).where(
            WaitlistEntry.order_id == taker_order)) == "done"
    third = held(services)
    # The taker's place stays booked; the four others passed on to the third five in line.
    assert sorted(third.values()) == sorted(o for o, _ in world.waiters[2 * FREED:3 * FREED - 1])


def test_a_pass_gives_the_place_to_the_next_and_leaving_frees_a_hold(
    services: Services, clock: Clock, world: World, api: TestClient
) -> None:
    cancel_all(services, world)
    tick(services, clock)
    chats = Chats()
    asyncio.run(Sender(services, [chats]).run_once())
    first_order, first_chat = world.waiters[0]
    offer = chats.got[first_chat][-1]
    pass_it = next(b.payload for b in offer.flat_buttons if b.payload.startswith("w:pass:"))
    run_turn(services, chat_key=first_chat, order_id=first_order, incoming=ButtonPress(pass_it),
             fallback_language="de")
    tick(services, clock)
    assert world.waiters[FREED][0] in held(services).values()  # the sixth got it
    seen = api.get(f"/api/v1/orders/5{100:07d}").json()["waitlist"]
    assert seen["status"] == "waiting" and seen["offers"][0]["status"] == "passed"
    second_order, second_chat = world.waiters[1]
    run_turn(services, chat_key=second_chat, order_id=second_order,
             incoming=ButtonPress("w:leave"), fallback_language="de")
    assert second_order not in held(services).values()
    assert api.get(f"/api/v1/orders/5{101:07d}").json()["waitlist"]["status"] == "left"


def test_earlier_in_words_offers_a_free_earlier_window_or_waits(
    services: Services, clock: Clock, world: World
) -> None:
    order_id, chat_key = world.leavers[0]
    earlier = TextMessage("geht es auch früher?", Parsed(
        "reschedule", 0.9, (Entity("timing", "earlier"),), "de"))
    reply = run_turn(services, chat_key=chat_key, order_id=order_id, incoming=earlier,
                     fallback_language="de")[0]
    # Booked on day 1 at 08:00 local: nothing earlier is free, so the customer waits.
    assert any(b.payload == "w:leave" for b in reply.flat_buttons)
    waiter_order, waiter_chat = world.waiters[0]
    cancel_all(services, World([], world.leavers[1:], [], world.late))
    offered = run_turn(services, chat_key=waiter_chat, order_id=waiter_order,
                       incoming=earlier, fallback_language="de")[0]
    assert sum(b.payload.startswith("s:") for b in offered.flat_buttons) == FREED - 1


def test_no_offer_at_night_nor_to_a_customer_who_stopped_the_messages(
    services: Services, clock: Clock, world: World
) -> None:
    cancel_all(services, world)
    day = clock.now
    clock.now = day.replace(hour=21, minute=30)  # 22:30 in Berlin: quiet hours
    assert tick(services, clock) == 0
    clock.now = day
    first_order, first_chat = world.waiters[0]
    run_turn(services, chat_key=first_chat, order_id=first_order,
             incoming=TextMessage("keine nachrichten mehr", Parsed("stop_notifications", 0.9,
                                                                  (), "de")),
             fallback_language="de")
    assert tick(services, clock) == FREED
    assert first_order not in held(services).values()
    assert world.waiters[FREED][0] in held(services).values()
