"""Benchmark push fan-out: 10,000 orders fall due in one tick; deliver against a 30/s limit.

Decides and enqueues the pushes, then delivers them through the real sender and Telegram
channel to a fake Bot API that answers 429 (with retry_after) to anything faster than 30
messages a second. Run: .venv/bin/python bench/fanout.py [--orders 10000] [--deliver 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import uvicorn
from sqlalchemy import insert
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.app import build_services
from bot.pushes import decide
from bot.sender import Sender
from bot.settings import load_settings
from bot.telegram import TelegramBot, TelegramChannel
from nlu.client import NluClient
from nlu.commands import free_port
from storage.db import transaction
from storage.models import Chat, Customer, Order

LIMIT = 30


class LimitedBotApi:
    """A Bot API that allows 30 sendMessage calls in any one second, and 429s the rest."""

    def __init__(self) -> None:
        self.sent: deque[float] = deque()
        self.accepted: list[float] = []
        self.refused: list[float] = []

    async def handle(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        if method == "getMe":
            return JSONResponse({"ok": True, "result": {"id": 1, "is_bot": True,
                                                        "first_name": "Bench",
                                                        "username": "bench_bot"}})
        if method != "sendMessage":
            return JSONResponse({"ok": True, "result": True})
        now = time.monotonic()
        while self.sent and now - self.sent[0] >= 1.0:
            self.sent.popleft()
        if len(self.sent) >= LIMIT:
            self.refused.append(now)
            return JSONResponse({"ok": False, "error_code": 429, "description": "Too Many "
                                 "Requests: retry after 1", "parameters": {"retry_after": 1}},
                                status_code=429)
        self.sent.append(now)
        self.accepted.append(now)
        form = parse_body(await request.body())
        return JSONResponse({"ok": True, "result": {
            "message_id": len(self.accepted), "date": int(time.time()),
            "chat": {"id": int(str(form.get("chat_id", 1))), "type": "private"},
            "text": str(form.get("text", ""))}})


def parse_body(body: bytes) -> dict[str, object]:
    """Read a Bot API request body, JSON or form-encoded."""
    try:
        value = json.loads(body or b"{}")
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}


def seed(services: object, orders: int, now: datetime) -> None:
    """Insert `orders` completed visits with a chat each: every one is due a rating request."""
    with transaction(services.sessions) as session:  # type: ignore[attr-defined]
        session.execute(insert(Customer), [
            {"id": i, "name": f"K{i}", "language": "de", "postal_code": "10115",
             "created_at": now} for i in range(1, orders + 1)])
        session.execute(insert(Order), [
            {"id": i, "number": f"9{i:07d}", "customer_id": i, "status": "completed",
             "street": "Weg", "postal_code": "10115", "city": "Berlin",
             "timezone": "Europe/Berlin", "region": "bench", "moves": 0,
             "finished_at": now - timedelta(minutes=5), "created_at": now,
             "updated_at": now} for i in range(1, orders + 1)])
        session.execute(insert(Chat), [
            {"chat_key": f"tg:{i}", "telegram_chat_id": i, "order_id": i, "customer_id": i,
             "language": "de", "notifications_enabled": True, "unreachable": False,
             "created_at": now} for i in range(1, orders + 1)])


async def run(orders: int, deliver: int) -> None:
    api = LimitedBotApi()
    port = free_port()
    app = Starlette(routes=[Route("/bot{token}/{method}", api.handle, methods=["GET", "POST"])])
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for "started"
        await asyncio.sleep(0.05)
    os.environ.update({"TECHBOT_DATA_DIR": tempfile.mkdtemp(prefix="techbot-fanout-"),
                       "TECHBOT_TELEGRAM__TOKEN": "1:bench-token-0123456789",
                       "TECHBOT_TELEGRAM__BASE_URL": f"http://127.0.0.1:{port}"})
    services = build_services(load_settings())
    now = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 15:00 in Berlin: no quiet hours
    services.clock = lambda: now
    seed(services, orders, now)
    started = time.perf_counter()
    enqueued = decide(services, now=now)
    decided = time.perf_counter() - started
    print(f"# Push fan-out: {orders} orders due in one tick\n")
    print(f"decide and enqueue: {enqueued} pushes in {decided:.2f} s "
          f"({enqueued / decided:.0f} pushes/s)")
    bot = TelegramBot(services, NluClient(url="http://127.0.0.1:9"))
    await bot.application.initialize()
    sender = Sender(services, [TelegramChannel(bot)])
    started = time.monotonic()
    while len(api.accepted) < deliver:
        if await sender.run_once() == 0:
            await asyncio.sleep(0.05)
    seconds = time.monotonic() - started
    late_429 = [t for t in api.refused if t - started > 1.0]
    print(f"delivered {len(api.accepted)} messages in {seconds:.1f} s: "
          f"{len(api.accepted) / seconds:.1f} messages/s against a limit of {LIMIT}/s; "
          f"429 answers: {len(api.refused)} in all, {len(late_429)} after the first second")
    await bot.application.shutdown()
    services.engine.dispose()
    server.should_exit = True
    await serving


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--deliver", type=int, default=1_500, help="messages to time the rate on")
    args = parser.parse_args()
    asyncio.run(run(args.orders, args.deliver))


if __name__ == "__main__":
    main()
