"""A whole simulated day: one technician, six stops, one 50 minutes late, one cancelled."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.pushes.decide import decide
from bot.pushes.sender import Sender
from bot.services import Services
from dialogues.model import Reply
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.orders import AddressFields, CustomerFields, record_event, require_order, upsert_order
from storage.slots import SlotFields, put_capacity
from storage.technicians import StopFields, set_route, upsert_technician

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 11, 24, tzinfo=BERLIN)  # a Tuesday


def local(hour: int, minute: int = 0, day: int = 0) -> datetime:
    return (DAY + timedelta(days=day, hours=hour, minutes=minute)).astimezone(UTC)


# number, language, booked window (local hours), lat
ORDERS = [("50000001", "de", (8, 10)), ("50000002", "en", (9, 11)), ("50000003", "tr", (9, 11)),
          ("50000004", "ru", (12, 14)), ("50000005", "ar", (12, 14)), ("50000006", "de", (13, 15))]
# What the dispatcher reports, as (local time, order, event, eta, reason).
EVENTS = [
    (local(7, 55), "50000001", "en_route", local(8, 20), None),
    (local(8, 20), "50000001", "arrived", None, None),
    (local(9, 5), "50000001", "completed", None, None),
    (local(9, 5), "50000002", "en_route", local(9, 25), None),
    (local(9, 25), "50000002", "arrived", None, None),
    (local(10, 10), "50000002", "completed", None, None),
    (local(10, 10), "50000003", "en_route", local(10, 30), None),
    (local(10, 15), "50000003", "eta", local(11, 20), "Stau auf der A100"),  # 50 minutes late
    (local(11, 0), "50000005", "cancelled", None, "Material fehlt"),
    (local(11, 20), "50000003", "arrived", None, None),
    (local(12, 5), "50000003", "completed", None, None),
    (local(12, 5), "50000004", "en_route", local(12, 25), None),
    (local(12, 25), "50000004", "arrived", None, None),
    (local(13, 10), "50000004", "completed", None, None),
    (local(13, 10), "50000006", "en_route", local(13, 30), None),
    (local(13, 30), "50000006", "arrived", None, None),
    (local(14, 15), "50000006", "completed", None, None),
]


@dataclass
class Recorder:
    """A channel that keeps every push with the time it went out."""

    clock: list[datetime]
    prefix: str = "tg:"
    sent: list[tuple[str, datetime, str]] = field(default_factory=list)

    async def deliver(self, chat_key: str, telegram_chat_id: int | None,
                      replies: tuple[Reply, ...]) -> None:
        for reply in replies:
            self.sent.append((chat_key, self.clock[0], reply.text))


def setup_day(services: Services) -> None:
    with transaction(services.sessions) as session:
        upsert_technician(session, technician_id="T-9", name="Jonas Becker", code_word="Kranich")
        for day in range(1, 6):  # free windows for the offers of the cancellation
            date = (DAY + timedelta(days=day)).date()
            put_capacity(session, region="berlin", day=date, slots=[
                SlotFields(local(h, day=day), local(h + 2, day=day), 3) for h in (9, 11, 13, 15)])
        for index, (number, language, (start, end)) in enumerate(ORDERS):
            order, _ = upsert_order(
                session, number=number,
                customer=CustomerFields(f"Kunde {index}", "10115", language),
                address=AddressFields(f"Weg {index}", "10115", "Berlin",
                                      lat=52.50 + 0.01 * index, lon=13.40),
                window=(local(start), local(end)), technician_id="T-9", region="berlin",
                timezone="Europe/Berlin", now=local(9, day=-7))
            chat = ensure_chat(session, chat_key=f"tg:{index}", telegram_chat_id=index,
                               now=local(9, day=-7))
            chat.language = language
            link_chat(session, chat=chat, order=order)
        set_route(session, technician_id="T-9", day=DAY.date(),
                  stops=[StopFields(n, 45) for n, _, _ in ORDERS])


def play(services: Services, clock: list[datetime], recorder: Recorder) -> None:
    sender = Sender(services, [recorder])
    pending = list(EVENTS)
    moment = local(16, day=-1)
    while moment <= local(18):
        clock[0] = moment
        while pending and pending[0][0] <= moment:
            at, number, kind, eta, reason = pending.pop(0)
            with transaction(services.sessions) as session:
                record_event(session, order=require_order(session, number=number), type=kind,
                             at=at, eta=eta, reason=reason, now=moment)
        decide(services, now=moment)
        asyncio.run(sender.run_once())
        moment += timedelta(minutes=5)


@pytest.fixture
def day_played(services: Services) -> Recorder:
    clock = [local(16, day=-1)]
    services.clock = lambda: clock[0]
    # The push machinery with the fixed rule, whose windows this day was written for; the
    # learned model's days are in tests/bot/test_replay.py.
    services.settings.prediction.method = "fixed"
    setup_day(services)
    recorder = Recorder(clock)
    play(services, clock, recorder)
    return recorder


def kinds(services: Services) -> dict[str, list[tuple[str, datetime | None]]]:
    from storage.outbox import sent_of_order

    found = {}
    with transaction(services.sessions) as session:
        for number, _, _ in ORDERS:
            order = require_order(session, number=number)
            found[number] = [(n.kind, n.sent_at) for n in sent_of_order(session, order_id=order.id)
                             if n.status == "sent"]
    return found


@pytest.mark.slow
def test_every_customer_gets_each_push_once_at_the_right_time(
    services: Services, day_played: Recorder
) -> None:
    pushes = kinds(services)
    for number, _language, _ in ORDERS:
        counts = Counter(kind for kind, _ in pushes[number])
        assert all(c == 1 for c in counts.values()), (number, counts)
        reminder = next(t for k, t in pushes[number] if k == "reminder")
        assert reminder == local(18, day=-1), number  # the evening before, at 18:00
    expected = {
        # At 08:00, when the night ends, the technician is already 20 minutes away: that
        # message says more than a narrowed window would.
        "50000001": {"reminder", "eta_near", "rating_request"},
        "50000002": {"reminder", "window_narrowed", "eta_near", "rating_request"},
        "50000003": {"reminder", "window_narrowed", "delayed", "eta_near", "rating_request"},
        # Stop 3 ran 50 minutes late, but the knock-on still lands inside the booked window
        # 12-14 (arrived 12:25): a "late" push there would be a false alarm (issue #13).
        "50000004": {"reminder", "window_narrowed", "eta_near", "rating_request"},
        "50000005": {"reminder", "cancelled_by_operator"},
        "50000006": {"reminder", "window_narrowed", "eta_near", "rating_request"},
    }
    assert {n: {k for k, _ in pushes[n]} for n in pushes} == expected


@pytest.mark.slow
def test_pushes_come_before_the_door_and_after_the_visit(
    services: Services, day_played: Recorder
) -> None:
    pushes = kinds(services)
    arrived = {n: at for at, n, kind, _, _ in EVENTS if kind == "arrived"}
    completed = {n: at for at, n, kind, _, _ in EVENTS if kind == "completed"}
    for number in arrived:
        near = next(t for k, t in pushes[number] if k == "eta_near")
        if number == "50000003":
            # At 10:10 the dispatcher said 10:30: "20 minutes away" was true then; five
            # minutes later the new ETA went out as a delay.
            delayed = next(t for k, t in pushes[number] if k == "delayed")
            assert (near, delayed) == (local(10, 10), local(10, 15))
            continue
        assert arrived[number] - timedelta(minutes=25) <= near < arrived[number]
        rating = next(t for k, t in pushes[number] if k == "rating_request")
        assert completed[number] <= rating <= completed[number] + timedelta(minutes=5)
    cancelled = next(t for k, t in pushes["50000005"] if k == "cancelled_by_operator")
    assert cancelled == local(11, 0)


@pytest.mark.slow
def test_each_push_is_in_the_customers_language_with_what_it_needs(
    services: Services, day_played: Recorder
) -> None:
    texts = {chat: [t for c, _, t in day_played.sent if c == chat] for chat in
             {c for c, _, _ in day_played.sent}}
    assert any("Stau auf der A100" in t for t in texts["tg:2"])  # the reason reaches tr
    assert any("Erinnerung" in t for t in texts["tg:0"])  # de reminder
    assert any("Reminder" in t for t in texts["tg:1"])  # en
    cancel = next(t for t in texts["tg:4"] if "Material fehlt" in t)
    assert "1." in cancel and "2." in cancel  # the new windows are in the same message
    assert not any("Erinnerung" in t for t in texts["tg:1"])  # nobody gets another's language
