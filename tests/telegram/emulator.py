"""The Telegram Bot API emulator (npm telegram-test-api 4.2.1), its client, and a bridge.

The bridge corrects exactly the emulator's known deviations from the real Bot API, in the test
setup only; the bot's own code talks to it as to Telegram.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from telegram.request import HTTPXRequest

from nlu.commands import free_port

EMULATOR_DIR = Path(__file__).resolve().parent.parent / "emulator"
BOT_TOKEN = "123456:TEST-token-for-the-emulator"
# Methods the emulator does not know (it answers 500): what the real API would return.
_UNKNOWN_METHODS_RESULT: dict[str, Any] = {
    "sendChatAction": True, "setMyCommands": True, "deleteMyCommands": True,
    "setChatMenuButton": True, "stopMessageLiveLocation": True,
}


class EmulatorRequest(HTTPXRequest):
    """python-telegram-bot's HTTP request with the emulator's deviations corrected."""

    sent_locations: list[dict[str, Any]]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(connection_pool_size=64, **kwargs)
        self.sent_locations = []

    async def do_request(self, url: str, method: str, request_data: Any = None,
                         **kwargs: Any) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        if name in ("sendLocation", "editMessageLiveLocation"):
            # Deviation 5: unknown methods get HTTP 500. Answer as the real API would.
            params = request_data.parameters if request_data else {}
            self.sent_locations.append({"method": name, **params})
            return 200, json.dumps({"ok": True, "result": _message(params)}).encode()
        if name in _UNKNOWN_METHODS_RESULT:
            return 200, json.dumps({"ok": True, "result": _UNKNOWN_METHODS_RESULT[name]}).encode()
        status, body = await super().do_request(url, method, request_data, **kwargs)
        try:
            payload = json.loads(body)
        except ValueError:
            return status, body
        if name == "getMe" and isinstance(payload.get("result"), dict):
            payload["result"].setdefault("is_bot", True)  # Deviation 1: getMe lacks is_bot.
        if name in ("editMessageText", "editMessageReplyMarkup") and payload.get("result") is None:
            payload["result"] = True  # Deviation 3: edits answer result null.
        _fix_dates_and_callbacks(payload.get("result"))
        return status, json.dumps(payload).encode()


def _message(params: dict[str, Any]) -> dict[str, Any]:
    return {"message_id": int(time.time() * 1000) % 1_000_000, "date": int(time.time()),
            "chat": {"id": int(params.get("chat_id", 0)), "type": "private"}}


def _fix_dates_and_callbacks(value: Any) -> None:
    """Deviation 2: dates in milliseconds. Deviation 4: callback queries lack chat_instance."""
    if isinstance(value, list):
        for item in value:
            _fix_dates_and_callbacks(item)
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("date"), int) and value["date"] > 10_000_000_000:
        value["date"] //= 1000
    if "callback_query" in value and isinstance(value["callback_query"], dict):
        value["callback_query"].setdefault("chat_instance", "emulator")
    for item in value.values():
        _fix_dates_and_callbacks(item)


@contextmanager
def running_emulator() -> Iterator[str]:
    """Start the emulator on a free port; yield its base URL."""
    port = free_port()
    process = subprocess.Popen(["node", str(EMULATOR_DIR / "server.js"), str(port)],
                               cwd=EMULATOR_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("ready"):
        process.kill()
        raise RuntimeError(f"the emulator did not start: {line}{process.stdout.read()}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


class Customer:
    """A Telegram user in a private chat with the bot, driven through the emulator's client API."""

    def __init__(self, url: str, *, chat_id: int, language: str = "de",
                 first_name: str = "Kunde", poll: float = 0.05) -> None:
        self.url = url
        self.poll = poll
        self.chat_id = chat_id
        self.language = language
        self.first_name = first_name
        self.http = httpx.AsyncClient(base_url=url, timeout=10)
        self.inbox: list[dict[str, Any]] = []

    def _common(self) -> dict[str, Any]:
        user = {"id": self.chat_id, "first_name": self.first_name, "is_bot": False,
                "language_code": self.language}
        return {"botToken": BOT_TOKEN, "date": int(time.time()), "from": user,
                "chat": {"id": self.chat_id, "first_name": self.first_name, "type": "private"}}

    async def say(self, text: str) -> None:
        """Send a text message (a /command is sent as one, with its entity)."""
        if text.startswith("/"):
            length = text.find(" ") if " " in text else len(text)
            await self.http.post("/sendCommand", json={
                **self._common(), "text": text,
                "entities": [{"offset": 0, "length": length, "type": "bot_command"}]})
            return
        await self.http.post("/sendMessage", json={**self._common(), "text": text})

    async def send_raw(self, message: dict[str, Any]) -> None:
        """Send any message body (a photo, a sticker, another chat type)."""
        await self.http.post("/sendMessage", json={**self._common(), **message})

    async def tap(self, payload: str, message_id: int = 1) -> None:
        """Press an inline button: a callback query with this payload."""
        common = self._common()
        await self.http.post("/sendCallback", json={
            "botToken": BOT_TOKEN, "date": common["date"], "from": common["from"],
            "data": payload,
            "message": {"message_id": message_id, "date": common["date"],
                        "chat": common["chat"], "from": {"id": 666, "is_bot": True,
                                                         "first_name": "Bot"}}})

    async def replies(self, count: int = 1, wait: float = 15) -> list[dict[str, Any]]:
        """Wait until the bot sent `count` more messages to this chat; return them."""
        deadline = time.monotonic() + wait
        new: list[dict[str, Any]] = []
        while len(new) < count:
            answer = (await self.http.post("/getUpdates", json={
                "token": BOT_TOKEN, "chatId": self.chat_id})).json()
            new += [{**u["message"], "message_id": u.get("messageId")}
                    for u in answer.get("result", [])]
            if len(new) >= count:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"chat {self.chat_id}: {len(new)} of {count} replies: {new}")
            await asyncio.sleep(self.poll)
        self.inbox += new
        return new

    async def link(self, token: str, wait: float = 15) -> dict[str, Any]:
        """Open the bot's deep link with this token; return the bot's answer."""
        await self.say(f"/start {token}")
        return await self.reply(wait)

    async def reply(self, wait: float = 15) -> dict[str, Any]:
        """Wait for the next message of the bot; return it."""
        return (await self.replies(1, wait))[0]

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the (title, payload) pairs of a bot message's inline keyboard."""
    markup = message.get("reply_markup") or {}
    if isinstance(markup, str):
        markup = json.loads(markup)
    return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", [])
            for b in row]
