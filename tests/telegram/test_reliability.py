"""Reliability through the real bot: a booking race, a dead NLU server, dropped connections."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from bot.app import Running, running_service
from bot.settings import load_settings
from dialogues.texts import Texts
from locales import load_catalog
from nlu.commands import free_port
from nlu.project import RasaServer
from storage.chats import create_link_token
from storage.db import transaction
from storage.models import CapacitySlot, Order
from storage.orders import AddressFields, CustomerFields, upsert_order
from storage.slots import SlotFields, put_capacity
from tests.telegram.emulator import Customer, EmulatorRequest, buttons

pytestmark = [pytest.mark.emulator, pytest.mark.rasa, pytest.mark.slow]


def link_tokens(running: Running, count: int) -> list[str]:
    """Create `count` customers in region "race", each with a window but no slot."""
    services = running.services
    now = services.clock()
    tokens = []
    with transaction(services.sessions) as session:
        day = (now + timedelta(days=3)).date()
        start = now.replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=3)
        put_capacity(session, region="race", day=day,
                     slots=[SlotFields(start, start + timedelta(hours=2), 10)])
        for i in range(count):
            window = (now + timedelta(days=5), now + timedelta(days=5, hours=2))
            order, _ = upsert_order(
                session, number=f"7{i:07d}",
                customer=CustomerFields(f"Kunde {i}", "10115", "de"),
                address=AddressFields(f"Weg {i}", "10115", "Berlin"), window=window,
                technician_id=None, region="race", timezone="Europe/Berlin", now=now)
            tokens.append(create_link_token(session, order_id=order.id, ttl=timedelta(hours=1),
                                            now=now))
    return tokens


async def race_for_the_last_places(running: Running, emulator: str, count: int) -> None:
    tokens = link_tokens(running, count)

    async def customer_books(index: int) -> None:
        customer = Customer(emulator, chat_id=90_000 + index)
        await customer.say(f"/start {tokens[index]}")
        await customer.reply(wait=60)
        await customer.tap("m:move")
        offer = await customer.reply(wait=60)
        slot = next((p for _, p in buttons(offer) if p.startswith("s:")), None)
        if slot is None:  # the ten places were gone before this customer asked: lost, told so
            outcomes["no offer"] += 1
            await customer.close()
            return
        await customer.tap(slot, message_id=offer["message_id"])
        question = await customer.reply(wait=60)
        await customer.tap(buttons(question)[0][1], message_id=question["message_id"])
        answer = (await customer.reply(wait=60))["text"]
        outcomes["booked" if answer.startswith(done) else "lost"] += 1
        await customer.close()

    done = Texts("de", load_catalog("de"))(
        "Done: your visit is now booked for {window}. I will remind you the evening before."
    ).split("{")[0]
    outcomes: Counter[str] = Counter()
    await asyncio.gather(*(customer_books(i) for i in range(count)))
    assert outcomes["booked"] == 10 and sum(outcomes.values()) == count, outcomes
    with transaction(running.services.sessions) as session:
        slot = session.query(CapacitySlot).filter_by(region="race").one()
        booked = session.query(Order).filter(Order.slot_id == slot.id).count()
        assert (slot.booked, booked) == (10, 10)


@pytest.fixture
async def pg_service(service_env: None, monkeypatch: pytest.MonkeyPatch,
                     pg_database: str) -> AsyncIterator[Running]:
    monkeypatch.setenv("TECHBOT_DATABASE__URL", pg_database)
    engine = create_engine(pg_database)
    with engine.begin() as connection:  # a clean database for the race
        connection.execute(text("TRUNCATE orders, customers, capacity_slots, chats, "
                                "conversations, link_tokens RESTART IDENTITY CASCADE"))
    engine.dispose()
    async with running_service(load_settings(), telegram_request=EmulatorRequest()) as running:
        yield running


async def test_a_hundred_customers_race_for_ten_places_on_sqlite(
    service: Running, emulator: str
) -> None:
    await race_for_the_last_places(service, emulator, 100)


@pytest.mark.postgres
async def test_a_hundred_customers_race_for_ten_places_on_postgresql(
    pg_service: Running, emulator: str
) -> None:
    await race_for_the_last_places(pg_service, emulator, 100)


@pytest.mark.postgres
async def test_dropped_database_connections_lose_no_update(
    pg_service: Running, emulator: str, pg_database: str
) -> None:
    (token,) = link_tokens(pg_service, 1)
    customer = Customer(emulator, chat_id=95_001)
    await customer.link(token)
    admin = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    name = pg_database.rsplit("/", 1)[1]
    with admin.connect() as connection:
        dropped = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
    admin.dispose()
    assert dropped and dropped > 0
    for _ in range(3):
        await customer.tap("m:status")
        await customer.reply(wait=20)
    assert len(customer.inbox) == 4  # the link answer and three status answers
    await customer.close()


async def test_a_dead_nlu_server_gets_buttons_fast_and_recovery_needs_no_restart(
    service_env: None, monkeypatch: pytest.MonkeyPatch, emulator: str
) -> None:
    own = RasaServer(port=free_port())
    own.start()
    monkeypatch.setenv("TECHBOT_NLU__URL", own.url)
    try:
        async with running_service(load_settings(),
                                   telegram_request=EmulatorRequest()) as running:
            (token,) = link_tokens(running, 1)
            customer = Customer(emulator, chat_id=96_001)
            await customer.link(token)
            await customer.say("wann kommt der techniker")
            booked = Texts("de", load_catalog("de"))("Your visit is booked for {window}.")
            assert booked.split("{")[0] in (await customer.reply())["text"]
            assert own.process is not None
            os.killpg(own.process.pid, signal.SIGKILL)
            own.process.wait()
            started = time.monotonic()
            await customer.say("wann kommt der techniker")
            answer = await customer.reply(wait=5)
            assert time.monotonic() - started < 3
            assert buttons(answer)  # the main actions, as buttons
            own.start()
            await customer.say("wann kommt der techniker")
            assert booked.split("{")[0] in (await customer.reply())["text"]
            await customer.close()
    finally:
        own.stop()
