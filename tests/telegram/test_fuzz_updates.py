"""Fuzzing the real python-telegram-bot application with any update Telegram could send.

Random texts (up to 4,096 characters, RTL, emoji, control characters), commands with random
arguments, photos, stickers, locations, edited messages, group and channel posts, forged
callback data and membership changes go through the bot's own handlers, its real storage and
the real Rasa server; only the Bot API's HTTP answers are canned here (the emulator cannot
produce most of these update types). No handler may fail, every private text is answered, and
no chat ever sees another customer's order number, street, name or window.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.request import BaseRequest, RequestData

from bot.channels.telegram import TelegramBot
from bot.services import Services
from bot.settings import load_settings
from bot.turns import texts_factory
from nlu.client import NluClient
from nlu.project import RasaServer
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.handoffs import open_handoff_of_chat
from storage.models import Chat, Handoff
from tests.conftest import NOW
from tests.factories import make_order, make_slots, make_technician

LINKED, OTHER_LINKED, STRANGER, GROUP = 1, 2, 3, -100123


class CannedBotApi(BaseRequest):
    """Answers the Bot API calls the handlers make, and records every message sent."""

    def __init__(self) -> None:
        self.sent: defaultdict[int, list[str]] = defaultdict(list)
        self.calls = 0

    @property
    def read_timeout(self) -> float | None:
        """No network, no timeout."""
        return None

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """Answer one call as Telegram would."""
        self.calls += 1
        name = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        result: Any = True
        if name == "getMe":
            result = {"id": 99, "is_bot": True, "first_name": "techbot", "username": "techbot"}
        elif name == "sendMessage":
            chat = int(params["chat_id"])
            text = str(params.get("text", ""))
            markup = params.get("reply_markup")
            self.sent[chat].append(text + (json.dumps(markup, ensure_ascii=False)
                                           if markup else ""))
            result = {"message_id": self.calls, "date": 1_700_000_000, "text": text,
                      "chat": {"id": chat, "type": "private"}}
        return 200, json.dumps({"ok": True, "result": result}).encode()


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                min_size=1, max_size=4096) | st.sampled_from([
                    "wann kommt der techniker", "‏مرحبا‎ متى يجي الفني", "👍" * 40, "2",
                    "\x00\x07\x1b[31m", "\u202eabc", "40000002 10115", "verschieben",
                    "die zweite", "Donnerstag nachmittag", "/start", "/start 40000002"])
chats = st.sampled_from([LINKED, OTHER_LINKED, STRANGER, GROUP])
callback_data = st.text(max_size=80) | st.from_regex(r"[a-z]:[0-9a-z:]{0,12}", fullmatch=True)


def _chat(chat_id: int) -> dict[str, Any]:
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "Nachbarn"}
    return {"id": chat_id, "type": "private", "first_name": "K"}


def _user(chat_id: int, language: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": abs(chat_id), "is_bot": False, "first_name": "K"}
    if language:
        user["language_code"] = language
    return user


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    """Draw one Telegram update of any kind the bot may receive."""
    chat = draw(chats)
    user = _user(chat, draw(st.sampled_from([None, "de", "en", "tr", "ru", "ar", "xx"])))
    base = {"message_id": draw(st.integers(1, 10**6)), "date": 1_700_000_000,
            "chat": _chat(chat), "from": user}
    kind = draw(st.sampled_from(["text", "command", "photo", "sticker", "location", "contact",
                                 "voice", "edited", "channel", "callback", "member"]))
    update: dict[str, Any] = {"update_id": draw(st.integers(1, 2**31))}
    if kind == "text":
        update["message"] = {**base, "text": draw(texts)}
    elif kind == "command":
        command = draw(st.sampled_from(["/start", "/stop", "/help", "/language", "/delete",
                                        "/unknown"]))
        text = f"{command} {draw(st.text(max_size=60))}".strip()
        update["message"] = {**base, "text": text, "entities": [
            {"type": "bot_command", "offset": 0, "length": len(command)}]}
    elif kind == "photo":
        update["message"] = {**base, "caption": draw(st.text(max_size=200)), "photo": [
            {"file_id": "p", "file_unique_id": "p", "width": 90, "height": 90}]}
    elif kind == "sticker":
        update["message"] = {**base, "sticker": {
            "file_id": "s", "file_unique_id": "s", "type": "regular", "width": 512,
            "height": 512, "is_animated": False, "is_video": False}}
    elif kind == "location":
        update["message"] = {**base, "location": {
            "latitude": draw(st.floats(-90, 90)), "longitude": draw(st.floats(-180, 180))}}
    elif kind == "contact":
        update["message"] = {**base, "contact": {"phone_number": "+49 171 5550199",
                                                 "first_name": "Otto"}}
    elif kind == "voice":
        update["message"] = {**base, "voice": {"file_id": "v", "file_unique_id": "v",
                                               "duration": 3}}
    elif kind == "edited":
        update["edited_message"] = {**base, "text": draw(texts), "edit_date": 1_700_000_100}
    elif kind == "channel":
        update["channel_post"] = {**base, "chat": {"id": -1009, "type": "channel",
                                                   "title": "News"}, "text": draw(texts)}
        del update["channel_post"]["from"]
    elif kind == "callback":
        update["callback_query"] = {
            "id": str(draw(st.integers(1, 10**9))), "from": user, "chat_instance": "ci",
            "data": draw(callback_data),
            "message": {**base, "from": {"id": 99, "is_bot": True, "first_name": "techbot"},
                        "text": "…"}}
    else:
        update["my_chat_member"] = {
            "chat": _chat(chat), "from": user, "date": 1_700_000_000,
            "old_chat_member": {"status": "member", "user": {"id": 99, "is_bot": True,
                                                             "first_name": "techbot"}},
            "new_chat_member": {"status": "kicked", "until_date": 0,
                                "user": {"id": 99, "is_bot": True, "first_name": "techbot"}}}
    return update


@pytest.fixture
def bot_services(monkeypatch: pytest.MonkeyPatch, engine: Any,
                 sessions: sessionmaker[Session]) -> Services:
    """Services with a Telegram token, on the test database."""
    monkeypatch.setenv("TECHBOT_API__TOKEN", "fuzz-api-token-0123456789")
    monkeypatch.setenv("TECHBOT_TELEGRAM__TOKEN", "1:fuzz-token-0123456789")
    monkeypatch.setenv("TECHBOT_TELEGRAM__API_REQUESTS_PER_SECOND", "0")
    return Services(settings=load_settings(), engine=engine, sessions=sessions,
                    clock=lambda: NOW)


@pytest.fixture
def secrets_of(bot_services: Services) -> dict[int, list[str]]:
    """Link two chats to two orders; return what each linked chat must never see."""
    with transaction(bot_services.sessions) as session:
        make_technician(session)
        for day in range(1, 4):
            make_slots(session, day=(NOW + timedelta(days=day)).date())
        orders = [make_order(session, number="40000001", technician_id="T-1"),
                  make_order(session, number="40000002", street="Geheimweg 99",
                             name="Otto Anders", postal_code="10119",
                             window=(NOW + timedelta(days=5, hours=3),
                                     NOW + timedelta(days=5, hours=5)))]
        for chat_id, order in zip((LINKED, OTHER_LINKED), orders, strict=True):
            chat = ensure_chat(session, chat_key=f"tg:{chat_id}", telegram_chat_id=chat_id,
                               now=NOW)
            link_chat(session, chat=chat, order=order)
        t = texts_factory("Europe/Berlin")("de")
        own = {o.number: [o.number, o.street.split()[0], o.customer.name.split()[0],
                          t.window(o.window_start, o.window_end)] for o in orders}
    return {LINKED: own["40000002"], OTHER_LINKED: own["40000001"],
            STRANGER: own["40000001"] + own["40000002"],
            GROUP: own["40000001"] + own["40000002"]}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for all of hypothesis' examples (the application lives across them)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.slow
def test_any_update_is_handled_answered_and_never_leaks(
    bot_services: Services, secrets_of: dict[int, list[str]], rasa_server: RasaServer,
    loop: asyncio.AbstractEventLoop
) -> None:
    api = CannedBotApi()
    nlu = NluClient(rasa_server.url)
    bot = TelegramBot(bot_services, nlu, request=api)
    errors: list[BaseException] = []
    original = bot.on_error

    async def on_error(update: object, context: Any) -> None:
        errors.append(context.error)
        await original(update, context)

    bot.application.error_handlers.clear()
    bot.application.add_error_handler(on_error)
    loop.run_until_complete(bot.application.initialize())

    @given(batch=st.lists(updates(), min_size=1, max_size=5))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def any_updates(batch: list[dict[str, Any]]) -> None:
        api.sent.clear()
        with transaction(bot_services.sessions) as session:  # each example starts with the bot
            session.execute(sql_update(Handoff).values(status="closed"))
        seen.update(next(k for k in data if k != "update_id") for data in batch)
        for data in batch:
            update = Update.de_json(data, bot.application.bot)
            assert update is not None
            loop.run_until_complete(bot.application.process_update(update))
            assert not errors, errors
            message = data.get("message")
            if (message and message["chat"]["type"] == "private" and message.get("text")
                    and message["text"].strip()):
                with transaction(bot_services.sessions) as session:
                    # While a person holds the chat the bot stays quiet: the person reads it.
                    quiet_ok = open_handoff_of_chat(
                        session, chat_key=f"tg:{message['chat']['id']}") is not None
                assert api.sent[message["chat"]["id"]] or quiet_ok, (
                    f"no answer to {message['text']!r}")
        for chat, shown in api.sent.items():
            for text in shown:
                leaked = [s for s in secrets_of.get(chat, []) if s in text]
                assert not leaked, (chat, text)

    seen: Counter[str] = Counter()
    try:
        any_updates()
        assert set(seen) >= {"message", "edited_message", "channel_post", "callback_query",
                             "my_chat_member"}, seen
    finally:
        loop.run_until_complete(bot.application.shutdown())
        loop.run_until_complete(nlu.close())


def test_blocking_and_unblocking_the_bot_stops_and_resumes_pushes(
    bot_services: Services, secrets_of: dict[int, list[str]], loop: asyncio.AbstractEventLoop
) -> None:
    bot = TelegramBot(bot_services, NluClient("http://127.0.0.1:9"), request=CannedBotApi())
    loop.run_until_complete(bot.application.initialize())

    def member_update(status: str) -> Update:
        user = {"id": 99, "is_bot": True, "first_name": "techbot"}
        update = Update.de_json({"update_id": 1, "my_chat_member": {
            "chat": _chat(LINKED), "from": _user(LINKED, "de"), "date": 1_700_000_000,
            "old_chat_member": {"status": "member", "user": user},
            "new_chat_member": {"status": status, "user": user, "until_date": 0}}},
            bot.application.bot)
        assert update is not None
        return update

    def unreachable() -> bool:
        with transaction(bot_services.sessions) as session:
            chat = session.query(Chat).filter_by(telegram_chat_id=LINKED).one()
            return chat.unreachable

    loop.run_until_complete(bot.application.process_update(member_update("kicked")))
    assert unreachable()
    loop.run_until_complete(bot.application.process_update(member_update("member")))
    assert not unreachable()
    loop.run_until_complete(bot.application.shutdown())
