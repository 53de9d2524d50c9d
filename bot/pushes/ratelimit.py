"""Telegram's sending limits: about 30 messages a second per bot and one a second per chat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class SendLimiter:
    """Space sends so that neither the bot's nor a chat's limit is ever exceeded."""

    def __init__(self, *, per_second: float = 30, per_chat_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._per_chat = per_chat_seconds
        self._clock = clock
        self._next_slot = 0.0
        self._next_for_chat: dict[int | str, float] = {}
        self._lock = asyncio.Lock()

    async def wait(self, chat: int | str) -> None:
        """Return when a message to this chat may go out."""
        async with self._lock:
            now = self._clock()
            at = max(now, self._next_slot, self._next_for_chat.get(chat, 0.0))
            self._next_slot = at + self._interval
            self._next_for_chat[chat] = at + self._per_chat
            if len(self._next_for_chat) > 10_000:  # forget chats whose pause is long over
                self._next_for_chat = {k: v for k, v in self._next_for_chat.items() if v > now}
        delay = at - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every send for a while (Telegram answered 429 with retry_after)."""
        self._next_slot = max(self._next_slot, self._clock() + seconds)
