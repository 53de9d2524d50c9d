"""Benchmark the whole reply path with 1, 10 and 50 customers talking at once.

emulator -> python-telegram-bot -> NLU server -> dialogues -> database -> reply, in one run with
raw /model/parse throughput of the same NLU server, and the memory of both processes.
Run: .venv/bin/python bench/replies.py [--messages 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import timedelta

import httpx

from bench.nlu import percentile, rss_mb
from bot.app import running_service
from bot.settings import load_settings
from nlu.commands import free_port
from nlu.normalize import normalize
from nlu.project import RasaServer, train
from storage.chats import create_link_token
from storage.db import transaction
from storage.demo import seed_demo
from storage.orders import require_order
from tests.telegram.emulator import BOT_TOKEN, EmulatorRequest, running_emulator

QUESTIONS = ["wann kommt der techniker", "when is the technician coming", "hallo",
             "teknisyen ne zaman gelecek", "когда придет мастер", "متى يجي الفني",
             "was muss ich vorbereiten", "danke", "how do i recognise the technician"]


def own_rss_mb() -> float:
    """Return this process's resident memory in MB."""
    return rss_mb(os.getpid()) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def raw_parse_rate(url: str, concurrency: int, total: int) -> float:
    """Return messages/s of plain /model/parse at this concurrency."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        async def one(i: int) -> None:
            async with gate:
                await http.post("/model/parse",
                                json={"text": normalize(QUESTIONS[i % len(QUESTIONS)])})

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        return total / (time.perf_counter() - started)


async def run(messages: int, limit: float) -> None:
    train()
    nlu = RasaServer(port=free_port())
    nlu.start()
    data = tempfile.mkdtemp(prefix="techbot-bench-")
    assert nlu.process is not None
    with running_emulator() as emulator:
        os.environ.update({
            "TECHBOT_API__TOKEN": "bench-api-token-0123456789", "TECHBOT_DATA_DIR": data,
            "TECHBOT_TELEGRAM__TOKEN": BOT_TOKEN, "TECHBOT_TELEGRAM__BASE_URL": emulator,
            "TECHBOT_TELEGRAM__POLL_INTERVAL_SECONDS": "0.02", "TECHBOT_NLU__URL": nlu.url,
            "TECHBOT_TELEGRAM__API_REQUESTS_PER_SECOND": str(limit)})
        async with running_service(load_settings(), telegram_request=EmulatorRequest()) as service:
            assert service.telegram is not None
            services = service.services
            with transaction(services.sessions) as session:
                seed_demo(session, now=services.clock(), link_ttl=timedelta(hours=1))
                order_id = require_order(session, number="40000001").id
            idle = (own_rss_mb(), rss_mb(nlu.process.pid))
            print(f"# Reply benchmark: {messages} messages per customer, {platform.machine()}, "
                  f"{os.cpu_count()} cores, Bot API limit "
                  f"{'off' if not limit else f'{limit:g} requests/s'}\n")
            print("| customers | messages | bot p50 ms | bot p95 ms | bot p99 ms | messages/s "
                  "| raw /model/parse msg/s | bot ÷ NLU time |")
            print("|---|---|---|---|---|---|---|---|")
            chat = 200_000
            for customers in (1, 10, 50):
                tokens = []
                with transaction(services.sessions) as session:
                    for _ in range(customers):
                        tokens.append(create_link_token(session, order_id=order_id,
                                                        ttl=timedelta(hours=1),
                                                        now=services.clock()))
                # The customers run in their own process: they must not share the bot's loop.
                talkers = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.customers", "--emulator", emulator,
                    "--tokens", json.dumps(tokens), "--first-chat", str(chat),
                    "--messages", str(messages), stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE)
                chat += customers
                assert talkers.stdin is not None and talkers.stdout is not None
                await talkers.stdout.readline()  # linked
                service.telegram.handled.clear()
                talkers.stdin.write(b"go\n")
                await talkers.stdin.drain()
                done = (await talkers.stdout.readline()).decode().split()
                await talkers.wait()
                seconds = float(done[1])
                took = list(service.telegram.handled)
                raw = await raw_parse_rate(nlu.url, customers, max(100, customers * messages))
                rate = len(took) / seconds
                nlu_share = 1 / raw  # seconds of NLU work per message at this concurrency
                print(f"| {customers} | {len(took)} | {1000 * statistics.median(took):.1f} | "
                      f"{1000 * percentile(took, 0.95):.1f} | {1000 * percentile(took, 0.99):.1f}"
                      f" | {rate:.1f} | {raw:.1f} | {(1 / rate) / nlu_share:.2f} |", flush=True)
            busy = (own_rss_mb(), rss_mb(nlu.process.pid))
    nlu.stop()
    print(f"\nRSS: service {idle[0]:.0f} MB idle, {busy[0]:.0f} MB after the runs; "
          f"NLU server {idle[1]:.0f} MB idle, {busy[1]:.0f} MB after the runs")
    print("bot ÷ NLU time: wall time per message through the whole path divided by the NLU "
          "server's own time per message at the same concurrency (1.00 = the bot adds nothing).")


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--limit", type=float, default=0,
                        help="Bot API requests/s (30 as on Telegram; 0: off, the bot's own cost)")
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.limit))


if __name__ == "__main__":
    main()
