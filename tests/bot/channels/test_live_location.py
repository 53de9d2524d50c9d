"""The live location of the approaching technician, with a fake Telegram bot."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from bot.channels.live_location import LiveLocations
from bot.services import Services
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.orders import get_order_by_id, record_event
from storage.technicians import update_position
from tests.conftest import NOW
from tests.factories import make_order, make_technician


@dataclass
class FakeBot:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def send_location(self, chat_id: int, latitude: float, longitude: float, *,
                            live_period: int) -> Any:
        self.calls.append(("send", (chat_id, latitude, longitude, live_period)))
        return SimpleNamespace(message_id=555)

    async def edit_message_live_location(self, chat_id: int, message_id: int, latitude: float,
                                         longitude: float) -> Any:
        self.calls.append(("edit", (chat_id, message_id, latitude, longitude)))

    async def stop_message_live_location(self, chat_id: int, message_id: int) -> Any:
        self.calls.append(("stop", (chat_id, message_id)))


def _setup(services: Services) -> int:
    with transaction(services.sessions) as session:
        make_technician(session, technician_id="T-5")
        order = make_order(session, technician_id="T-5")
        chat = ensure_chat(session, chat_key="tg:42", telegram_chat_id=42, now=NOW)
        link_chat(session, chat=chat, order=order)
        record_event(session, order=order, type="en_route", at=NOW, eta=None, reason=None,
                     now=NOW)
        return order.id


def _move(services: Services, lat: float, minutes: int) -> None:
    with transaction(services.sessions) as session:
        update_position(session, technician_id="T-5", lat=lat, lon=13.4,
                        at=NOW + timedelta(minutes=minutes))


def test_off_by_default_nothing_is_shared(services: Services) -> None:
    _setup(services)
    _move(services, 52.5, 1)
    bot = FakeBot()
    asyncio.run(LiveLocations(services, bot).technician_moved("T-5"))
    assert bot.calls == []


def test_start_move_and_stop_on_arrival(services: Services) -> None:
    services.settings.telegram.live_location = True
    order_id = _setup(services)
    bot = FakeBot()
    live = LiveLocations(services, bot)
    _move(services, 52.50, 1)
    asyncio.run(live.technician_moved("T-5"))
    _move(services, 52.51, 2)
    asyncio.run(live.technician_moved("T-5"))
    asyncio.run(live.order_changed(order_id))  # still en route: keeps going
    with transaction(services.sessions) as session:
        order = get_order_by_id(session, order_id=order_id)
        record_event(session, order=order, type="arrived", at=NOW, eta=None, reason=None,
                     now=NOW)
    asyncio.run(live.order_changed(order_id))
    assert [c[0] for c in bot.calls] == ["send", "edit", "stop"]
    assert bot.calls[0][1] == (42, 52.50, 13.4, 3600)
    assert bot.calls[1][1] == (42, 555, 52.51, 13.4)
