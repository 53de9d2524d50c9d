"""The `techbot nlu ...` commands: train, serve, stop, evaluate, parse."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from nlu.client import NluClient
from nlu.normalize import normalize
from nlu.project import NLU_DIR, PROJECT_ROOT, RasaServer, cache_dir, train
from nlu.training_data import Example, data_files, load_examples
from nlu.types import Parsed

PARSE_CONCURRENCY = 16


def free_port(preferred: int | None = None) -> int:
    """Return the preferred port if it is free, else any free local port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free local port")


@contextmanager
def nlu_endpoints(urls: list[str], *, port: int) -> Iterator[list[str]]:
    """Yield the configured NLU URLs, or start a local server for the block and stop it after."""
    if urls:
        yield urls
        return
    server = RasaServer(port=free_port(port))
    server.start()
    try:
        yield [server.url]
    finally:
        server.stop()


def _pid_file() -> Path:
    return cache_dir() / "nlu-server.pid"


def serve(*, port: int, foreground: bool) -> int:
    """Start the server on the current model; return once it answers (or run until killed)."""
    train()
    server = RasaServer(port=port, outlive_parent=not foreground)
    server.start()
    assert server.process is not None
    print(f"NLU server answers at {server.url} (pid {server.process.pid}, log {server.log_path})")
    if not foreground:
        _pid_file().write_text(str(server.process.pid))
        return 0
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


def stop() -> int:
    """Stop a server started by `techbot nlu serve`."""
    path = _pid_file()
    if not path.exists():
        print("no NLU server started by `techbot nlu serve` is known")
        return 0
    pid = int(path.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        print(f"stopped the NLU server (pid {pid})")
    except ProcessLookupError:
        print("the NLU server had already stopped")
    path.unlink()
    return 0


def _parse_line(line: str) -> str | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    text = value.get("text") if isinstance(value, dict) else None
    return text if isinstance(text, str) else None


def _output(text: str | None, parsed: Parsed | None) -> dict[str, Any]:
    if parsed is None:
        return {"text": text, "error": 'each line must be a JSON object {"text": "..."}'}
    return {
        "text": text,
        "intent": parsed.intent,
        "confidence": round(parsed.confidence, 4),
        "language": parsed.language,
        "entities": [{"entity": e.entity, "value": e.value} for e in parsed.entities],
    }


async def parse_stream(client: NluClient, lines: IO[str], out: IO[str]) -> int:
    """Parse JSON lines concurrently and print the results in input order."""
    gate = asyncio.Semaphore(PARSE_CONCURRENCY)

    async def one(text: str | None) -> Parsed | None:
        if text is None:
            return None
        async with gate:
            return await client.parse(text)

    texts = [_parse_line(line) for line in lines if line.strip()]
    results = await asyncio.gather(*(one(t) for t in texts))
    for text, parsed in zip(texts, results, strict=True):
        out.write(json.dumps(_output(text, parsed), ensure_ascii=False) + "\n")
    await client.close()
    return 0 if all(r is not None and r.available for r in results) else 1


def parse(*, urls: list[str], port: int, timeout: float, threshold: float) -> int:
    """Run `techbot nlu parse`: stdin JSON lines in, JSON lines out."""
    if not urls:
        train()
    with nlu_endpoints(urls, port=port) as endpoints:
        client = NluClient(endpoints, timeout=timeout, fallback_threshold=threshold)
        return asyncio.run(parse_stream(client, sys.stdin, sys.stdout))


def drop_held_out_lines(files: list[Path], test: list[Example]) -> list[str]:
    """Delete the training lines that are held-out messages (after normalisation); return them.

    Two writers choose short phrases ("ok danke", "bye") independently; the held-out copy stays.
    """
    held_out = {normalize(e.plain) for e in test}
    dropped = []
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = []
        for line in lines:
            item = line.strip()
            plain = Example("", "", item[2:]).plain if item.startswith("- ") else ""
            if plain and normalize(plain) in held_out:
                dropped.append(plain)
                continue
            kept.append(line)
        if len(kept) != len(lines):
            path.write_text("".join(kept), encoding="utf-8")
    return dropped


def drop_held_out() -> int:
    """Run `techbot nlu drop-held-out`: delete training lines that are held-out messages."""
    dropped = drop_held_out_lines(data_files(), load_examples("tests"))
    for text in dropped:
        print(f"dropped: {text}")
    print(f"{len(dropped)} training lines were held-out messages; the held-out copies stay.")
    return 0


def evaluate(*, urls: list[str], port: int, folds: int, threshold: float) -> int:
    """Evaluate on the held-out sets (and k-fold), print and write docs/nlu-report.md."""
    from nlu.evaluate import (
        cross_validate,
        parse_all,
        render_report,
        score_by_set,
        score_held_out,
    )

    started = time.monotonic()
    if not urls:
        train()
    examples = load_examples("tests")
    with nlu_endpoints(urls, port=port) as endpoints:
        client = NluClient(endpoints, timeout=30, fallback_threshold=threshold)
        parsed = asyncio.run(parse_all(client, examples))
    scores = score_held_out(examples, parsed)
    crossval = cross_validate(folds, NLU_DIR / "config.yml") if folds > 1 else None
    command = "techbot nlu evaluate" + (f" --folds {folds}" if folds != 5 else "")
    report = render_report(scores, crossval, command=command,
                           seconds=time.monotonic() - started, config=NLU_DIR / "config.yml",
                           by_set=score_by_set(examples, parsed))
    (PROJECT_ROOT / "docs").mkdir(exist_ok=True)
    (PROJECT_ROOT / "docs" / "nlu-report.md").write_text(report, encoding="utf-8")
    print(report)
    return 0
