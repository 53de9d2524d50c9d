"""Benchmark the NLU: latency and throughput through the client, beside raw /model/parse.

Run: .venv/bin/python bench/nlu.py [--requests N] [--url URL]
Starts a local Rasa server on the current model unless --url is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from nlu.client import NluClient
from nlu.commands import free_port
from nlu.normalize import normalize
from nlu.project import RasaServer, train
from nlu.training_data import load_examples


def percentile(values: list[float], share: float) -> float:
    """Return the value below which `share` of the sorted values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(call: Callable[[str], Awaitable[object]], texts: list[str],
                  concurrency: int) -> tuple[list[float], float]:
    """Run every text through `call`, `concurrency` at a time; return latencies and seconds."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(text: str) -> None:
        async with gate:
            started = time.perf_counter()
            await call(text)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in texts))
    return latencies, time.perf_counter() - started


def process_tree(pid: int) -> list[int]:
    """Return the process and all its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in children.read_text().split())
    return found


def rss_mb(pid: int, *, tree: bool = True) -> float:
    """Return the resident memory of a process (and its descendants) in MB (Linux /proc)."""
    total = 0
    for member in process_tree(pid) if tree else [pid]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int, *, tree: bool = True) -> float:
    """Return the CPU time (user + system) a process (and its descendants) used so far."""
    total = 0
    for member in process_tree(pid) if tree else [pid]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def run(url: str, texts: list[str]) -> list[str]:
    """Measure both paths at 1, 8 and 32 concurrent requests; return report lines."""
    client = NluClient(url, timeout=10)
    raw = httpx.AsyncClient(base_url=url, timeout=10,
                            limits=httpx.Limits(max_keepalive_connections=32))

    async def through_client(text: str) -> object:
        return await client.parse(text)

    async def raw_parse(text: str) -> object:
        return (await raw.post("/model/parse", json={"text": normalize(text)})).json()

    await through_client("warm up")
    await raw_parse("warm up")
    lines = ["| path | concurrency | p50 ms | p95 ms | p99 ms | messages/s |",
             "|---|---|---|---|---|---|"]
    for concurrency in (1, 8, 32):
        for name, call in (("client (Parsed)", through_client), ("raw /model/parse", raw_parse)):
            latencies, seconds = await measure(call, texts, concurrency)
            lines.append(
                f"| {name} | {concurrency} | {1000 * statistics.median(latencies):.1f} | "
                f"{1000 * percentile(latencies, 0.95):.1f} | "
                f"{1000 * percentile(latencies, 0.99):.1f} | {len(texts) / seconds:.0f} |")
    await client.close()
    await raw.aclose()
    return lines


def main() -> None:
    """Parse the arguments, start the server if needed, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    examples = load_examples("tests")
    texts = [examples[i % len(examples)].plain for i in range(args.requests)]
    server = None
    url = args.url
    if not url:
        train()
        server = RasaServer(port=free_port())
        server.start()
        url = server.url
    try:
        idle = rss_mb(server.process.pid) if server and server.process else None
        lines = asyncio.run(run(url, texts))
        busy = rss_mb(server.process.pid) if server and server.process else None
    finally:
        if server is not None:
            server.stop()
    print(f"# NLU benchmark: {args.requests} held-out messages per row, {platform.machine()}, "
          f"{platform.python_version()}")
    print("\n".join(lines))
    if idle is not None:
        print(f"\nRasa server RSS: {idle:.0f} MB idle, {busy:.0f} MB after the runs")


if __name__ == "__main__":
    main()
