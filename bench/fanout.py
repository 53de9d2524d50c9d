"""Benchmark push fan-out: 10,000 orders fall due in one tick; deliver against a 30/s limit.

Decides and enqueues the pushes, then delivers them through the real sender and Telegram
channel to a fake Bot API that answers 429 (with retry_after) to anything faster than 30
messages a second. Run: .venv/bin/python bench/fanout.py [--orders 10000] [--deliver 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime

from bot.app import build_services
from bot.channels.telegram import TelegramBot, TelegramChannel
from bot.pushes.decide import decide
from bot.pushes.sender import Sender
from bot.settings import load_settings
from nlu.client import NluClient
from storage.db import transaction
from tests.fake_bot_api import FakeBotApi, seed_finished_visits, serving

LIMIT = 30


async def run(orders: int, deliver: int) -> None:
    api = FakeBotApi(limit_per_second=LIMIT)
    with serving(api) as url:
        await deliver_and_measure(api, url, orders, deliver)


async def deliver_and_measure(api: FakeBotApi, url: str, orders: int, deliver: int) -> None:
    """Decide the pushes of `orders` finished visits, then deliver `deliver` messages."""
    os.environ.update({"TECHBOT_DATA_DIR": tempfile.mkdtemp(prefix="techbot-fanout-"),
                       "TECHBOT_TELEGRAM__TOKEN": "1:bench-token-0123456789",
                       "TECHBOT_TELEGRAM__BASE_URL": url})
    services = build_services(load_settings())
    now = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 15:00 in Berlin: no quiet hours
    services.clock = lambda: now
    with transaction(services.sessions) as session:
        seed_finished_visits(session, orders=orders, now=now)
    started = time.perf_counter()
    enqueued = decide(services, now=now)
    decided = time.perf_counter() - started
    print(f"# Push fan-out: {orders} orders due in one tick\n")
    print(f"decide and enqueue: {enqueued} pushes in {decided:.2f} s "
          f"({enqueued / decided:.0f} pushes/s)")
    bot = TelegramBot(services, NluClient("http://127.0.0.1:9"))
    await bot.application.initialize()
    sender = Sender(services, [TelegramChannel(bot)])
    started = time.monotonic()
    while len(api.accepted) < deliver:
        if await sender.run_once() == 0:
            await asyncio.sleep(0.05)
    seconds = time.monotonic() - started
    late_429 = [t for t in api.refused_at if t - started > 1.0]
    print(f"delivered {len(api.accepted)} messages in {seconds:.1f} s: "
          f"{len(api.accepted) / seconds:.1f} messages/s against a limit of {LIMIT}/s; "
          f"429 answers: {api.refused[429]} in all, {len(late_429)} after the first second")
    await bot.application.shutdown()
    services.engine.dispose()


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--deliver", type=int, default=1_500, help="messages to time the rate on")
    args = parser.parse_args()
    asyncio.run(run(args.orders, args.deliver))


if __name__ == "__main__":
    main()
