"""What every channel promises the sender: deliver replies to a chat, or say why not."""

from __future__ import annotations

from typing import Protocol

from dialogues.model import Reply


class Blocked(Exception):
    """The customer blocked the bot: no more pushes to this chat."""


class TryLater(Exception):
    """Telegram is busy or unreachable: try again after `after` seconds (if it said so)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Channel(Protocol):
    """Where pushes go: Telegram, or the terminal of `techbot chat`."""

    prefix: str  # the chat keys it serves: "tg:" or "term:"

    async def deliver(self, chat_key: str, telegram_chat_id: int | None,
                      replies: tuple[Reply, ...]) -> None:
        """Send the replies; raise Blocked or TryLater."""
