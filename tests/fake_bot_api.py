"""A fake Telegram Bot API for the push storm and the fan-out benchmark: limits and failures.

It answers what the service's polling and sender call (getMe, getUpdates, sendMessage, ...),
counts every sendMessage it accepted by chat, and can refuse sends the way Telegram does: 429
with retry_after above a rate limit or in bursts, and 500 at random.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import uvicorn
from sqlalchemy import insert
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nlu.commands import free_port
from storage.models import Chat, Customer, Order
from tests.threaded_server import serve_in_thread


class FakeBotApi:
    """Accepts or refuses sendMessage calls and remembers every accepted one."""

    def __init__(self, *, limit_per_second: int = 0, server_errors: float = 0.0,
                 burst_every: int = 0, burst_length: int = 0, seed: int = 7,
                 per_chat_seconds: float = 0.0) -> None:
        self.limit_per_second = limit_per_second  # 429 above this many sends a second (0: none)
        self.per_chat_seconds = per_chat_seconds  # 429 for a chat sent to more often than this
        self.last_to_chat: dict[int, float] = {}
        self.server_errors = server_errors  # share of sends answered 500
        self.burst_every, self.burst_length = burst_every, burst_length  # 429 bursts by count
        self.random = random.Random(seed)  # reproducible faults
        self.window: deque[float] = deque()
        self.accepted: list[tuple[float, int]] = []  # (monotonic time, chat id)
        self.texts: dict[int, list[str]] = {}  # what each chat was sent, in order
        self.refused: Counter[int] = Counter()  # by status code
        self.refused_at: list[float] = []
        self.refused_why: Counter[str] = Counter()  # 429s: "bot" (rate) or "chat" (per chat)
        self.requests = 0
        # Called with each send's number before it is looked at; True drops the send unseen.
        self.before_send: Callable[[int], bool] | None = None

    def delivered(self) -> Counter[int]:
        """Return how many messages each chat was sent."""
        return Counter(chat for _, chat in self.accepted)

    async def handle(self, request: Request) -> JSONResponse:
        """Answer one Bot API method."""
        method = request.path_params["method"]
        if method == "getMe":
            return JSONResponse({"ok": True, "result": {"id": 1, "is_bot": True,
                                                        "first_name": "Fake",
                                                        "username": "fake_bot"}})
        if method == "getUpdates":
            await asyncio.sleep(0.2)  # a short long-poll: nobody writes to this bot
            return JSONResponse({"ok": True, "result": []})
        if method != "sendMessage":
            return JSONResponse({"ok": True, "result": True})
        self.requests += 1
        if self.before_send is not None and self.before_send(self.requests):
            return JSONResponse({"ok": False, "error_code": 502, "description": "dropped"},
                                status_code=502)
        refusal = self._refusal(time.monotonic())
        if refusal is not None:
            return refusal
        try:
            form = parse_body(await request.body())
        except ClientDisconnect:  # the sender died while sending: Telegram never got it
            return JSONResponse({"ok": False}, status_code=499)
        chat = int(str(form.get("chat_id", 0)))
        now = time.monotonic()
        if self.per_chat_seconds and now - self.last_to_chat.get(chat, -1e9) < (
                self.per_chat_seconds):
            return self._too_many(now, "chat")
        self.last_to_chat[chat] = now
        self.accepted.append((now, chat))
        self.texts.setdefault(chat, []).append(str(form.get("text", "")))
        return JSONResponse({"ok": True, "result": {
            "message_id": len(self.accepted), "date": int(time.time()),
            "chat": {"id": chat, "type": "private"}, "text": str(form.get("text", ""))}})

    def _refusal(self, now: float) -> JSONResponse | None:
        while self.window and now - self.window[0] >= 1.0:
            self.window.popleft()
        burst = (self.burst_every and self.requests % self.burst_every < self.burst_length)
        if burst or (self.limit_per_second and len(self.window) >= self.limit_per_second):
            return self._too_many(now, "bot")
        if self.server_errors and self.random.random() < self.server_errors:
            self.refused[500] += 1
            return JSONResponse({"ok": False, "error_code": 500,
                                 "description": "Internal Server Error"}, status_code=500)
        self.window.append(now)
        return None


    def _too_many(self, now: float, why: str) -> JSONResponse:
        self.refused[429] += 1
        self.refused_at.append(now)
        self.refused_why[why] += 1
        return JSONResponse({"ok": False, "error_code": 429, "description": "Too Many "
                             "Requests: retry after 1", "parameters": {"retry_after": 1}},
                            status_code=429)


def parse_body(body: bytes) -> dict[str, object]:
    """Read a Bot API request body, JSON or form-encoded."""
    try:
        value = json.loads(body or b"{}")
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}


@contextmanager
def serving(api: FakeBotApi) -> Iterator[str]:
    """Serve the fake on a free port in a thread of its own; yield its base URL."""
    app = Starlette(routes=[Route("/bot{token}/{method}", api.handle, methods=["GET", "POST"])])
    with serve_in_thread(app, name="the fake Bot API") as url:
        yield url


class RemoteBotApi:
    """A fake Bot API in a process of its own, read over HTTP (`refresh`).

    Its clock, which judges the bot's pace, then shares no interpreter with a test that keeps
    hundreds of customers busy.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted: list[tuple[float, int]] = []
        self.texts: dict[int, list[str]] = {}
        self.refused: Counter[int] = Counter()
        self.refused_at: list[float] = []
        self.refused_why: Counter[str] = Counter()

    def refresh(self) -> None:
        """Read what the fake accepted and refused so far."""
        state = httpx.get(f"{self.url}/_state", timeout=30).json()
        self.accepted = [(at, chat) for at, chat in state["accepted"]]
        self.texts = {int(chat): texts for chat, texts in state["texts"].items()}
        self.refused = Counter({int(k): v for k, v in state["refused"].items()})
        self.refused_at = state["refused_at"]
        self.refused_why = Counter(state["refused_why"])

    def delivered(self) -> Counter[int]:
        """Return how many messages each chat was sent."""
        return Counter(chat for _, chat in self.accepted)


def _app_with_state(api: FakeBotApi) -> Starlette:
    async def state(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": api.accepted, "texts": api.texts,
                             "refused": api.refused, "refused_at": api.refused_at,
                             "refused_why": api.refused_why})

    return Starlette(routes=[Route("/_state", state),
                             Route("/bot{token}/{method}", api.handle, methods=["GET", "POST"])])


@contextmanager
def serving_in_process(*, limit_per_second: int, per_chat_seconds: float) -> Iterator[
        RemoteBotApi]:
    """Serve a fake with these limits from its own process until the block ends."""
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "tests.fake_bot_api", str(port),
                              str(limit_per_second), str(per_chat_seconds)],
                             cwd=Path(__file__).resolve().parent.parent)
    remote = RemoteBotApi(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                remote.refresh()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("the fake Bot API did not start") from None
                time.sleep(0.1)
        yield remote
    finally:
        child.terminate()
        child.wait(timeout=10)


def seed_finished_visits(session: Session, *, orders: int, now: datetime,
                         second_chats: int = 0, first: int = 1) -> None:
    """Insert visits finished five minutes ago, each with a chat: each is due a rating request.

    Ids run from `first`; chat ids are the order ids; the first `second_chats` orders get a
    second chat (id + 10**6).
    """
    ids = range(first, first + orders)
    session.execute(insert(Customer), [
        {"id": i, "name": f"K{i}", "language": "de", "postal_code": "10115",
         "created_at": now} for i in ids])
    session.execute(insert(Order), [
        {"id": i, "number": f"9{i:07d}", "customer_id": i, "status": "completed",
         "street": "Weg", "postal_code": "10115", "city": "Berlin",
         "timezone": "Europe/Berlin", "region": "bench", "moves": 0,
         "finished_at": now - timedelta(minutes=5), "created_at": now,
         "updated_at": now} for i in ids])
    chats = [(i, i) for i in ids]
    chats += [(i, i + 10**6) for i in ids[:second_chats]]
    session.execute(insert(Chat), [
        {"chat_key": f"tg:{chat}", "telegram_chat_id": chat, "order_id": order,
         "customer_id": order, "language": "de", "notifications_enabled": True,
         "unreachable": False, "created_at": now} for order, chat in chats])


if __name__ == "__main__":  # serving_in_process: port, bot limit, per-chat seconds
    port, limit, per_chat = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    fake = FakeBotApi(limit_per_second=limit, per_chat_seconds=per_chat)
    uvicorn.run(_app_with_state(fake), port=port, log_level="warning")
