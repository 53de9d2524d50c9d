"""Benchmark the whole reply path with 1, 10 and 50 customers talking at once.

emulator -> python-telegram-bot -> NLU server -> dialogues -> database -> reply, in one run with
raw /model/parse throughput of the same NLU server, and the memory of both processes.
Customers pause to read and type (up to --think seconds) before each message, as people do; a
last row without pauses shows where the path saturates. CPU time per message is read for the
bot, the NLU server and the emulator separately.
Run: .venv/bin/python -m bench.replies [--messages 20] [--limit 30] [--think 2] [--nlu-servers 1]
                                      [--config nlu/candidates/session3.yml]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

from bench.customers import QUESTIONS  # the raw NLU rate is measured on the same messages
from bench.nlu import cpu_seconds, percentile, rss_mb
from bot.app import running_service
from bot.metrics import Metrics
from bot.settings import load_settings
from nlu.commands import free_port
from nlu.normalize import normalize
from nlu.project import RasaServer, train
from storage.chats import create_link_token
from storage.db import transaction
from storage.demo import seed_demo
from storage.orders import require_order
from tests.telegram.emulator import BOT_TOKEN, EmulatorRequest, running_emulator

POLL_SECONDS = 0.02


def own_rss_mb() -> float:
    """Return this process's resident memory in MB."""
    own = rss_mb(os.getpid(), tree=False)
    return own or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def cpu_now(nlu: list[int], emulator: int) -> list[float]:
    """Return CPU seconds so far: the bot (this process alone), the NLU servers, the emulator."""
    return [cpu_seconds(os.getpid(), tree=False), sum(cpu_seconds(pid) for pid in nlu),
            cpu_seconds(emulator)]


def nlu_failures(metrics: Metrics) -> int:
    """Return how many NLU requests failed or timed out so far."""
    return int(sum(sample.value for family in metrics.nlu_failures.collect()
                   for sample in family.samples if sample.name.endswith("_total")))


def emulator_pid(url: str) -> int:
    """Return the process id of the Node emulator serving this URL."""
    port = url.rsplit(":", 1)[1]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if any(a.endswith(b"server.js") for a in args) and port.encode() in args:
                return int(cmdline.parent.name)
    raise RuntimeError(f"no emulator process serves {url}")


async def run(messages: int, limit: float, rows: list[tuple[int, float]], servers: int,
              config: Path | None) -> None:
    model = train(config=config)
    nlus = [RasaServer(port=free_port(), model=model) for _ in range(servers)]
    for nlu in nlus:
        nlu.start()
    nlu_pids = [nlu.process.pid for nlu in nlus if nlu.process is not None]
    data = tempfile.mkdtemp(prefix="techbot-bench-")
    with running_emulator() as emulator:
        os.environ.update({
            "TECHBOT_API__TOKEN": "bench-api-token-0123456789", "TECHBOT_DATA_DIR": data,
            "TECHBOT_TELEGRAM__TOKEN": BOT_TOKEN, "TECHBOT_TELEGRAM__BASE_URL": emulator,
            "TECHBOT_TELEGRAM__POLL_INTERVAL_SECONDS": str(POLL_SECONDS),
            "TECHBOT_NLU__URLS": ",".join(nlu.url for nlu in nlus),
            "TECHBOT_TELEGRAM__API_REQUESTS_PER_SECOND": str(limit)})
        async with running_service(load_settings(), telegram_request=EmulatorRequest()) as service:
            assert service.telegram is not None
            services = service.services
            with transaction(services.sessions) as session:
                seed_demo(session, now=services.clock(), link_ttl=timedelta(hours=1))
                order_id = require_order(session, number="40000001").id
            idle = (own_rss_mb(), sum(rss_mb(pid) for pid in nlu_pids))
            print(f"# Reply benchmark: {messages} messages per customer, {platform.machine()}, "
                  f"{os.cpu_count()} cores, Bot API limit "
                  f"{'off' if not limit else f'{limit:g} requests/s'}, {servers} NLU "
                  f"server(s) on `{model.name.removesuffix('.tar.gz')}`; load = 1-minute load "
                  "average when the row began\n")
            print("| customers | typing pause s | messages | bot p50 ms | bot p95 ms | bot p99 ms "
                  "| messages/s | CPU ms/msg bot | CPU ms/msg NLU | CPU ms/msg emulator "
                  "| bot ÷ NLU CPU | raw /model/parse msg/s | bot ÷ NLU time "
                  "| NLU timeouts and failures | load |")
            print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            node = emulator_pid(emulator)
            # Polling an emulator (it has no long polling) costs CPU with nobody talking.
            idle_before = cpu_seconds(os.getpid(), tree=False)
            await asyncio.sleep(3)
            idle_ms_per_s = 1000 * (cpu_seconds(os.getpid(), tree=False) - idle_before) / 3
            chat = 200_000
            for customers, think in rows:
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
                    "--messages", str(messages), "--think", str(think),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
                chat += customers
                assert talkers.stdin is not None and talkers.stdout is not None
                await talkers.stdout.readline()  # linked
                service.telegram.handled.clear()
                load = os.getloadavg()[0]
                failures_before = nlu_failures(services.metrics)
                cpu_before = cpu_now(nlu_pids, node)
                talkers.stdin.write(b"go\n")
                await talkers.stdin.drain()
                done = (await talkers.stdout.readline()).decode().split()
                cpu = [now - was for now, was in
                       zip(cpu_now(nlu_pids, node), cpu_before, strict=True)]
                failures = nlu_failures(services.metrics) - failures_before
                await talkers.wait()
                seconds = float(done[1])
                took = list(service.telegram.handled)
                bot_ms, nlu_ms, node_ms = (1000 * c / len(took) for c in cpu)
                raw = await raw_parse_rate(nlus[0].url, customers, max(100, customers * messages))
                rate = len(took) / seconds
                nlu_share = 1 / raw  # seconds of NLU work per message at this concurrency
                print(f"| {customers} | {think:g} | {len(took)} | "
                      f"{1000 * statistics.median(took):.1f} | "
                      f"{1000 * percentile(took, 0.95):.1f} | {1000 * percentile(took, 0.99):.1f}"
                      f" | {rate:.1f} | {bot_ms:.2f} | {nlu_ms:.2f} | {node_ms:.2f} | "
                      f"{bot_ms / nlu_ms:.2f} | {raw:.1f} | {(1 / rate) / nlu_share:.2f} | "
                      f"{failures} | {load:.1f} |", flush=True)
            busy = (own_rss_mb(), sum(rss_mb(pid) for pid in nlu_pids))
    for nlu in nlus:
        nlu.stop()
    print(f"\nThe bot's CPU with nobody talking (polling the emulator every "
          f"{POLL_SECONDS * 1000:.0f} ms): {idle_ms_per_s:.0f} ms per second; it dominates the "
          "CPU per message at 1 and 10 customers.")
    print(f"RSS: service {idle[0]:.0f} MB idle, {busy[0]:.0f} MB after the runs; "
          f"NLU server(s) {idle[1]:.0f} MB idle, {busy[1]:.0f} MB after the runs")
    print("CPU ms/msg: CPU time each process spent per message in the run (the bot's includes "
          "polling, python-telegram-bot, language id, dialogue, database and sending).\n"
          "bot ÷ NLU time: wall time per message through the whole path divided by the NLU "
          "server's own time per message at the same concurrency (1.00 = the bot adds nothing; "
          "with typing pauses the customers, not the bot, set the pace).")


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--limit", type=float, default=0,
                        help="Bot API requests/s (30 as on Telegram; 0: off, the bot's own cost)")
    parser.add_argument("--think", type=float, default=2.0,
                        help="the longest typing pause of a customer, in seconds")
    parser.add_argument("--nlu-servers", type=int, default=1,
                        help="local NLU servers, balanced by the bot's client")
    parser.add_argument("--config", type=Path, default=None,
                        help="serve the model of this pipeline (default: nlu/config.yml's)")
    args = parser.parse_args()
    # People pause to read and type; the last row, without pauses, shows the saturation.
    rows = [(1, 0.0), (10, args.think), (50, args.think), (50, 0.0)]
    config = args.config.resolve() if args.config else None
    asyncio.run(run(args.messages, args.limit, rows, args.nlu_servers, config))


if __name__ == "__main__":
    main()
