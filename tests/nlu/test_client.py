"""The NLU client against fake servers: parsing, fallback, outage, the queue and balancing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from nlu.client import NluClient
from nlu.types import NOT_UNDERSTOOD

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Counter:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.states: list[bool] = []

    def failed(self, reason: str) -> None:
        self.failures.append(reason)

    def up(self, available: bool) -> None:
        self.states.append(available)


class Clock:
    """The real monotonic clock, which a test can move ahead."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


def client_with(handler: Handler, metrics: Counter | None = None, *,
                urls: tuple[str, ...] = ("http://nlu.test",), **options: object) -> NluClient:
    settings: dict[str, object] = {"timeout": 0.5, "fallback_threshold": 0.3, **options}
    return NluClient(urls, metrics=metrics or Counter(),
                     transport=httpx.MockTransport(handler), **settings)  # type: ignore[arg-type]


def answer(intent: str, confidence: float, entities: list[dict[str, str]] | None = None,
           ranking: list[dict[str, object]] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"intent": {"name": intent, "confidence": confidence},
                                     "entities": entities or [],
                                     "intent_ranking": ranking or []})


async def test_parse_sends_the_normalised_text_and_reads_entities() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["text"])
        return answer("identify", 0.9, [{"entity": "order_number", "value": "48213377"},
                                        {"entity": "order_number", "value": "48213377"}])

    parsed = await client_with(handler).parse("Meine Auftragsnummer: 48213377!!!")
    assert seen == ["meine auftragsnummer 48213377"]
    assert (parsed.intent, parsed.language, parsed.entity("order_number")) == (
        "identify", "de", "48213377")
    assert len(parsed.entities) == 1


async def test_low_confidence_and_fallback_are_not_understood() -> None:
    low = await client_with(lambda r: answer("greet", 0.2)).parse("hmm was")
    assert low.intent == NOT_UNDERSTOOD
    fallback = await client_with(lambda r: answer(NOT_UNDERSTOOD, 0.3, ranking=[
        {"name": NOT_UNDERSTOOD, "confidence": 0.3}, {"name": "greet", "confidence": 0.25}])
                                 ).parse("hmm")
    assert (fallback.intent, fallback.confidence) == (NOT_UNDERSTOOD, 0.25)


async def test_empty_text_is_not_sent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing to parse")

    assert (await client_with(handler).parse("🤡 !!!")).intent == NOT_UNDERSTOOD


@pytest.mark.parametrize("failure", [
    httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
])
async def test_outage_is_reported_once_and_recovered_from(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Counter()
    down = True

    def handler(request: httpx.Request) -> httpx.Response:
        if down:
            raise failure
        return answer("greet", 0.9)

    client = client_with(handler, metrics)
    first = await client.parse("hallo")
    await client.parse("hallo")
    assert (first.intent, first.available) == (NOT_UNDERSTOOD, False)
    assert len(metrics.failures) == 2
    assert metrics.states == [False, False]
    down = False
    # The only server is asked again at once: there is no other to answer meanwhile.
    assert (await client.parse("hallo")).intent == "greet"
    assert metrics.states[-1] is True
    reason = "ConnectError" if isinstance(failure, httpx.ConnectError) else "Timeout"
    assert [r.message for r in caplog.records] == [
        f"NLU unavailable ({reason}); answering with buttons until it answers again",
        "the NLU answers again"]


async def test_server_errors_and_garbage_are_outages() -> None:
    five_hundred = await client_with(lambda r: httpx.Response(500)).parse("hallo")
    garbage = await client_with(lambda r: httpx.Response(200, content=b"<html>")).parse("hallo")
    listed = await client_with(lambda r: httpx.Response(200, json=[1])).parse("hallo")
    assert not five_hundred.available and not garbage.available and not listed.available


class SlowServer:
    """A fake server that answers only when the test lets it, and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (host, text) in the order they arrived
        self.busy: dict[str, int] = {}
        self.most_busy: dict[str, int] = {}
        self.release = asyncio.Event()
        self.arrived = asyncio.Condition()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seen.append((host, json.loads(request.content)["text"]))
        async with self.arrived:
            self.arrived.notify_all()
        self.busy[host] = self.busy.get(host, 0) + 1
        self.most_busy[host] = max(self.most_busy.get(host, 0), self.busy[host])
        try:
            await self.release.wait()
        finally:
            self.busy[host] -= 1
        return answer("greet", 0.9)

    async def until_seen(self, count: int) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.seen) >= count)


async def test_requests_wait_in_arrival_order_with_a_few_in_flight() -> None:
    server = SlowServer()
    client = client_with(server, in_flight=2, timeout=5)
    texts = [f"nachricht {i}" for i in range(12)]
    parsing = [asyncio.create_task(client.parse(text)) for text in texts]
    await server.until_seen(2)
    assert len(server.seen) == 2  # the rest wait in the client, not in the server
    server.release.set()
    results = await asyncio.gather(*parsing)
    assert all(r.intent == "greet" for r in results)
    assert [text for _, text in server.seen] == texts
    assert server.most_busy == {"nlu.test": 2}


async def test_requests_are_balanced_over_the_servers() -> None:
    server = SlowServer()
    client = client_with(server, urls=("http://a.test", "http://b.test/"), in_flight=3,
                         timeout=5)
    parsing = [asyncio.create_task(client.parse(f"nachricht {i}")) for i in range(30)]
    await server.until_seen(6)
    assert server.busy == {"a.test": 3, "b.test": 3}
    server.release.set()
    assert all(r.available for r in await asyncio.gather(*parsing))
    hosts = [host for host, _ in server.seen]
    assert hosts.count("a.test") == hosts.count("b.test") == 15
    assert server.most_busy == {"a.test": 3, "b.test": 3}


async def test_a_dead_server_is_skipped_and_tried_again_after_a_pause(
    caplog: pytest.LogCaptureFixture
) -> None:
    clock, asked = Clock(), []
    dead = {"a.test"}

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host in dead:
            raise httpx.ConnectError("refused")
        return answer("greet", 0.9)

    metrics = Counter()
    client = client_with(handler, metrics, urls=("http://a.test", "http://b.test"),
                         retry_seconds=1.0, clock=clock)
    results = [await client.parse("hallo") for _ in range(5)]
    assert all(r.intent == "greet" for r in results)  # the first one retried on b
    assert asked == ["a.test", "b.test"] + ["b.test"] * 4
    assert metrics.failures == ["ConnectError"]
    clock.ahead += 1.1  # after the pause a is tried once; still dead: a longer pause
    await client.parse("hallo")
    await client.parse("hallo")
    assert asked[6:] == ["a.test", "b.test", "b.test"]
    clock.ahead += 1.1
    await client.parse("hallo")
    assert asked[9:] == ["b.test"]
    dead.clear()
    clock.ahead += 1.0
    await client.parse("hallo")
    await client.parse("hallo")
    assert asked[10:] == ["a.test", "b.test"]  # back in the rotation
    assert [r.message for r in caplog.records if "a.test" in r.message] == [
        "NLU server at http://a.test unavailable (ConnectError); the others answer "
        "meanwhile", "NLU server at http://a.test answers again"]


async def test_a_request_whose_server_dies_mid_parse_is_answered_by_another() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a.test":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response")
        return answer("greet", 0.9)

    metrics = Counter()
    client = client_with(handler, metrics, urls=("http://a.test", "http://b.test"))
    parsed = await client.parse("hallo")
    assert (parsed.intent, parsed.available) == ("greet", True)
    assert metrics.failures == ["RemoteProtocolError"]


async def test_the_timeout_counts_the_wait_in_the_queue() -> None:
    server = SlowServer()
    metrics = Counter()
    client = client_with(server, metrics, in_flight=1, timeout=0.2)
    started = time.monotonic()
    first, queued = await asyncio.gather(client.parse("eins"), client.parse("zwei"))
    took = time.monotonic() - started
    assert not first.available and not queued.available
    assert 0.2 <= took < 0.4  # the queued message did not wait for its own 0.2 s after
    assert [text for _, text in server.seen] == ["eins"]
    assert sorted(metrics.failures) == ["QueueTimeout", "Timeout"]


async def test_a_stuck_server_is_taken_out_of_the_rotation() -> None:
    clock = Clock()
    stuck = SlowServer()  # never released

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a.test":
            return await stuck(request)
        return answer("greet", 0.9)

    client = client_with(handler, urls=("http://a.test", "http://b.test"), timeout=0.2,
                         clock=clock)
    first = await client.parse("hallo")  # sent to a, which answers nothing for 0.2 s
    assert not first.available
    rest = [await client.parse("hallo") for _ in range(4)]
    assert all(r.available for r in rest)
    assert [host for host, _ in stuck.seen] == ["a.test"]


async def test_a_busy_server_that_answers_others_is_not_taken_out(
    caplog: pytest.LogCaptureFixture
) -> None:
    b_may_answer = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["text"]
        if text == "langsam":
            await asyncio.Event().wait()
        if text == "warte":
            await b_may_answer.wait()
        return answer("greet", 0.9)

    client = client_with(handler, urls=("http://a.test", "http://b.test"), timeout=0.2)
    slow = asyncio.create_task(client.parse("langsam"))  # to a, never answered
    held = asyncio.create_task(client.parse("warte"))  # to b, answered later
    quick = await client.parse("schnell")  # to a, answered at once
    b_may_answer.set()
    # a answered "schnell" while "langsam" waited on it for the whole 0.2 s: busy, not dead.
    assert quick.available and (await held).available and not (await slow).available
    assert not any("http://a.test unavailable" in r.message for r in caplog.records)


async def test_a_cancelled_parse_gives_its_place_back() -> None:
    server = SlowServer()
    client = client_with(server, in_flight=1, timeout=5)
    first = asyncio.create_task(client.parse("eins"))
    second = asyncio.create_task(client.parse("zwei"))
    await server.until_seen(1)
    first.cancel()
    second.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    server.release.set()
    assert (await client.parse("drei")).available
    assert [text for _, text in server.seen] == ["eins", "drei"]


async def test_readiness_asks_each_server_until_one_answers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a.test":
            raise httpx.ConnectError("refused")
        return httpx.Response(200, text="Hello from Rasa: 3.6.21")

    assert await client_with(handler, urls=("http://a.test", "http://b.test")).reachable()
    assert not await client_with(lambda r: httpx.Response(503)).reachable()
