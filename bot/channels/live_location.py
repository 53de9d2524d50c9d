"""Share the approaching technician as a Telegram live location, when the operator allows it."""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from telegram.error import TelegramError

from bot.services import Services
from storage.chats import chats_of_order, chats_of_technician_en_route
from storage.db import transaction
from storage.models import Chat
from storage.orders import get_order_by_id
from storage.technicians import get_technician

log = logging.getLogger(__name__)
LIVE_PERIOD_SECONDS = 3600  # Telegram allows up to a day; the last hour before the door is enough


class LocationBot(Protocol):
    """The three Bot API methods a live location needs (python-telegram-bot's Bot has them)."""

    async def send_location(self, chat_id: int, latitude: float, longitude: float, *,
                            live_period: int) -> Any: ...
    async def edit_message_live_location(self, chat_id: int, message_id: int, latitude: float,
                                         longitude: float) -> Any: ...
    async def stop_message_live_location(self, chat_id: int, message_id: int) -> Any: ...


@dataclass(frozen=True)
class _Target:
    chat_key: str
    chat_id: int
    message_id: int | None


class LiveLocations:
    """Start, move and stop the live location of technicians on their way to customers."""

    def __init__(self, services: Services, bot: LocationBot) -> None:
        self.services = services
        self.bot = bot

    @property
    def enabled(self) -> bool:
        """Say whether the operator allows sharing the technician's position."""
        return self.services.settings.telegram.live_location

    def _targets(self, technician_id: str) -> tuple[list[_Target], float | None, float | None]:
        with transaction(self.services.sessions) as session:
            technician = get_technician(session, technician_id=technician_id)
            pairs = chats_of_technician_en_route(session, technician_id=technician_id)
            targets = [_Target(chat.chat_key, chat.telegram_chat_id or 0,
                               chat.live_location_message_id) for chat, _ in pairs]
            return (targets, technician.lat if technician else None,
                    technician.lon if technician else None)

    def _remember(self, chat_key: str, message_id: int | None) -> None:
        with transaction(self.services.sessions) as session:
            chat = session.query(Chat).filter_by(chat_key=chat_key).one_or_none()
            if chat is not None:
                chat.live_location_message_id = message_id

    async def technician_moved(self, technician_id: str) -> None:
        """Show the new position to every customer the technician is on the way to."""
        if not self.enabled:
            return
        targets, lat, lon = await run_in_threadpool(self._targets, technician_id)
        if lat is None or lon is None:
            return
        for target in targets:
            try:
                if target.message_id is None:
                    message = await self.bot.send_location(target.chat_id, lat, lon,
                                                           live_period=LIVE_PERIOD_SECONDS)
                    await run_in_threadpool(self._remember, target.chat_key,
                                            int(message.message_id))
                else:
                    await self.bot.edit_message_live_location(target.chat_id, target.message_id,
                                                              lat, lon)
            except TelegramError:
                log.warning("live location for chat %s failed", target.chat_id, exc_info=True)

    def _stoppable(self, order_id: int) -> list[_Target]:
        with transaction(self.services.sessions) as session:
            order = get_order_by_id(session, order_id=order_id)
            if order is not None and order.status in ("en_route", "scheduled"):
                return []  # still on the way: keep showing it
            return [_Target(c.chat_key, c.telegram_chat_id or 0, c.live_location_message_id)
                    for c in chats_of_order(session, order_id=order_id)
                    if c.live_location_message_id is not None]

    async def order_changed(self, order_id: int) -> None:
        """Stop the live location once the technician is at the door (or the visit is off)."""
        for target in await run_in_threadpool(self._stoppable, order_id):
            assert target.message_id is not None
            with suppress(TelegramError):
                await self.bot.stop_message_live_location(target.chat_id, target.message_id)
            await run_in_threadpool(self._remember, target.chat_key, None)
