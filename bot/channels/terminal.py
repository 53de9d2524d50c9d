"""The terminal channel: be the customer of an order, line by line (`techbot chat`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import IO

from bot.services import Services
from bot.turns import chat_state, handle_chat
from dialogues.model import Button, ButtonPress, Incoming, Reply, TextMessage
from nlu.client import NluClient
from storage.chats import delete_conversation, ensure_chat, link_chat, save_conversation
from storage.db import transaction
from storage.errors import OrderNotFound
from storage.orders import get_order, require_order


def render(reply: Reply) -> str:
    """Print a reply the way the terminal shows it: text, then numbered buttons."""
    buttons = reply.flat_buttons
    # An offer lists its windows in the text for Telegram, where buttons may be cut short;
    # here the numbered buttons are that list, so the text's copy of each one goes.
    titles = {button.title for button in buttons}
    lines = [line for line in reply.text.split("\n") if line not in titles]
    lines += [f"[{i}] {button_label(button, i)}" for i, button in enumerate(buttons, 1)]
    return "\n".join(lines)


def button_label(button: Button, number: int) -> str:
    """Return the button's title without its own number (the terminal numbers every button)."""
    return button.title.removeprefix(f"{number}. ")


def order_id_of(services: Services, order_number: str) -> int | None:
    """Return the id of the order with this number, or None."""
    with transaction(services.sessions) as session:
        order = get_order(session, number=order_number)
        return order.id if order else None


def link_terminal(services: Services, *, order_number: str, language: str | None
                  ) -> tuple[str, str]:
    """Bind a terminal chat to the order; return its key and the language."""
    chat_key = f"term:{order_number}"
    with transaction(services.sessions) as session:
        order = require_order(session, number=order_number)
        chat = ensure_chat(session, chat_key=chat_key, telegram_chat_id=None,
                           now=services.clock())
        link_chat(session, chat=chat, order=order)
        chosen = language or order.customer.language
        chat.language = chosen
        if language is not None:
            # A language given on the command line starts a fresh conversation in it.
            delete_conversation(session, chat_key=chat_key)
            save_conversation(session, chat_key=chat_key, state="idle", language=chosen,
                              data={}, now=services.clock(), expected_version=None)
        return chat_key, chosen


async def chat_loop(
    services: Services,
    client: NluClient,
    *,
    order_number: str,
    language: str | None,
    lines: IO[str],
    write: Callable[[str], None],
    on_question: Callable[[bool], None] | None = None,
) -> int:
    """Read the customer's lines, answer each, until the input ends.

    `on_question` hears, after each turn, whether a question (an offer, a yes/no) is open.
    """
    try:
        chat_key, chosen = link_terminal(services, order_number=order_number, language=language)
    except OrderNotFound:
        write(f"techbot: there is no order {order_number} (try `techbot seed demo`)")
        return 2
    buttons: list[Button] = []
    interactive = lines.isatty()
    # The NLU's prior: the conversation's language, read once, then as each turn leaves it.
    spoken = chat_state(services, chat_key=chat_key).language or chosen
    while True:
        if interactive:
            write("you> ")
        # In a thread: the pushes and the demo's day go on while the customer thinks.
        line = await asyncio.to_thread(lines.readline)
        if not line:
            return 0
        text = line.strip()
        if not text:
            continue
        incoming: Incoming
        if text.isdigit() and 1 <= int(text) <= len(buttons):
            pressed = buttons[int(text) - 1]
            write(f"  (pressed: {button_label(pressed, int(text))})")
            incoming = ButtonPress(pressed.payload)
        else:
            parsed = await client.parse(text, current_language=spoken)
            incoming = TextMessage(text, parsed)
        turn = await handle_chat(services, chat_key=chat_key, incoming=incoming,
                                 fallback_language=chosen)
        if turn is None:  # linked above; only a deleted order or chat gets here
            write(f"techbot: the chat is no longer linked to order {order_number}")
            return 2
        spoken, replies = turn.language, turn.replies
        if on_question is not None:
            on_question(turn.question_open)
        for reply in replies:
            write("bot> " + render(reply).replace("\n", "\n     "))
        with_buttons = [r for r in replies if r.buttons]
        buttons = with_buttons[-1].flat_buttons if with_buttons else []


def stdout_writer(text: str) -> None:
    """Print to the terminal at once (piped output too)."""
    end = "" if text.endswith("> ") else "\n"
    sys.stdout.write(text + end)
    sys.stdout.flush()


class TerminalChannel:
    """Pushes to the terminal of `techbot chat`: printed as they happen."""

    prefix = "term:"

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    async def deliver(self, chat_key: str, telegram_chat_id: int | None,
                      replies: tuple[Reply, ...]) -> None:
        """Print the push."""
        for reply in replies:
            self.write("bot> (push) " + render(reply).replace("\n", "\n     "))
