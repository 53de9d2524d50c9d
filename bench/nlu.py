"""Benchmark the NLU: latency and throughput through the client, beside raw /model/parse.

Run: .venv/bin/python -m bench.nlu [--requests N] [--previous CONFIG] [--servers N] [--url URL]
Serves the previous pipeline's model (nlu/candidates/session3.yml, trained once if missing) and
the current one in turn on local Rasa servers, so that both are measured in the same run, and
the current one once more on --servers servers balanced by the client. --url measures a running
server instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from nlu.client import NluClient
from nlu.commands import free_port
from nlu.normalize import normalize
from nlu.project import NLU_DIR, RasaServer, model_path, train
from nlu.training_data import load_examples

CONCURRENCY = (1, 8, 32)
IN_FLIGHT = (1, 2, 4)  # requests in flight per server through the client, at 32 concurrent
TIMEOUT = 10.0  # seconds; a request slower than this counts as failed


def percentile(values: list[float], share: float) -> float:
    """Return the value below which `share` of the sorted values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class Row:
    """The figures of one run of every text through one path."""

    latencies: list[float]
    seconds: float
    failed: int
    cpu_seconds: float  # of the NLU servers during the run
    load: float  # the machine's 1-minute load average when the run began

    def cells(self) -> str:
        """Return the row's Markdown cells from p50 on."""
        ms = [1000 * v for v in (statistics.median(self.latencies),
                                  percentile(self.latencies, 0.95),
                                  percentile(self.latencies, 0.99), max(self.latencies))]
        count = len(self.latencies)
        return (" | ".join(f"{v:.1f}" for v in ms) + f" | {count / self.seconds:.0f} | "
                f"{1000 * self.cpu_seconds / count:.2f} | {self.failed} | {self.load:.1f} |")


HEADER = ("| model | servers | path | concurrency | p50 ms | p95 ms | p99 ms | max ms | "
          "messages/s | NLU CPU ms/msg | failed | load |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


async def measure(call: Callable[[str], Awaitable[bool]], texts: list[str], concurrency: int,
                  pids: list[int]) -> Row:
    """Run every text through `call`, `concurrency` at a time; `call` says if it succeeded."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failed = 0

    async def one(text: str) -> None:
        nonlocal failed
        async with gate:
            started = time.perf_counter()
            if not await call(text):
                failed += 1
            latencies.append(time.perf_counter() - started)

    load = os.getloadavg()[0]
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in texts))
    seconds = time.perf_counter() - started
    return Row(latencies, seconds, failed, sum(cpu_seconds(pid) for pid in pids) - cpu_before,
               load)


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


async def bench_servers(name: str, urls: list[str], pids: list[int], texts: list[str], *,
                        raw: bool) -> list[str]:
    """Measure the client (and, for one server, raw /model/parse); return table rows."""
    lines = []
    prefix = f"| {name} | {len(urls)} |"
    async with httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT,
                                 limits=httpx.Limits(max_keepalive_connections=32)) as http:

        async def raw_parse(text: str) -> bool:
            try:
                response = await http.post("/model/parse", json={"text": normalize(text)})
                return response.status_code == 200
            except httpx.HTTPError:
                return False

        for concurrency in CONCURRENCY:
            for in_flight in (IN_FLIGHT if concurrency == max(CONCURRENCY) else (2,)):
                client = NluClient(urls, timeout=TIMEOUT, in_flight=in_flight)

                async def through_client(text: str, client: NluClient = client) -> bool:
                    return (await client.parse(text)).available

                await through_client("warm up")
                row = await measure(through_client, texts, concurrency, pids)
                lines.append(f"{prefix} client, {in_flight} in flight | {concurrency} | "
                             f"{row.cells()}")
                await client.close()
            if raw:
                await raw_parse("warm up")
                row = await measure(raw_parse, texts, concurrency, pids)
                lines.append(f"{prefix} raw /model/parse | {concurrency} | {row.cells()}")
    return lines


@contextlib.contextmanager
def serving(model: Path, count: int) -> Iterator[list[RasaServer]]:
    """Run `count` local servers on the model for the block."""
    servers = [RasaServer(port=free_port(), model=model) for _ in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def bench_model(name: str, model: Path, texts: list[str], servers: int) -> list[str]:
    """Measure one model on one server, then through the client on `servers` servers."""
    lines = []
    for count in sorted({1, servers}):
        with serving(model, count) as running:
            pids = [s.process.pid for s in running if s.process is not None]
            idle = sum(rss_mb(pid) for pid in pids)
            lines += asyncio.run(bench_servers(name, [s.url for s in running], pids, texts,
                                               raw=count == 1))
            busy = sum(rss_mb(pid) for pid in pids)
        lines.append(f"<!-- {name}, {count} server(s): RSS {idle:.0f} MB idle, {busy:.0f} MB "
                     "after the runs -->")
    return lines


def main() -> None:
    """Parse the arguments, serve each model in turn, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--previous", type=Path, default=NLU_DIR / "candidates" / "session3.yml",
                        help="the previous pipeline, measured beside the current one "
                             "(an empty value: the current one alone)")
    parser.add_argument("--servers", type=int, default=2,
                        help="also measure the current model on this many servers")
    parser.add_argument("--url", default="", help="measure this running server alone")
    args = parser.parse_args()
    examples = load_examples("tests")
    texts = [examples[i % len(examples)].plain for i in range(args.requests)]
    print(f"# NLU benchmark: {args.requests} held-out messages per row, {platform.machine()}, "
          f"{os.cpu_count()} cores, {platform.python_version()}; load = 1-minute load average "
          "when the row began\n")
    print(HEADER, flush=True)
    if args.url:
        print("\n".join(asyncio.run(bench_servers(args.url, [args.url], [], texts, raw=True))))
        return
    models = [("current", model_path())]
    if str(args.previous) not in ("", "."):
        previous = args.previous.resolve()
        models.insert(0, (f"previous ({previous.stem})", model_path(previous)))
        train(config=previous)
    train()
    for name, model in models:
        lines = bench_model(f"{name}: `{model.name.removesuffix('.tar.gz')}`", model, texts,
                            args.servers if name == "current" else 1)
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
