"""The NLU client against a fake server: parsing, fallback, outage and recovery."""

from __future__ import annotations

import json

import httpx
import pytest

from nlu.client import NluClient
from nlu.types import NOT_UNDERSTOOD


class Counter:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.states: list[bool] = []

    def failed(self, reason: str) -> None:
        self.failures.append(reason)

    def up(self, available: bool) -> None:
        self.states.append(available)


def client_with(handler: object, metrics: Counter | None = None) -> NluClient:
    client = NluClient(url="http://nlu.test", timeout=0.5, fallback_threshold=0.3,
                       metrics=metrics or Counter())
    client._http = httpx.AsyncClient(base_url="http://nlu.test",
                                     transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return client


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
    assert sum("unavailable" in r.message for r in caplog.records) == 1
    down = False
    assert (await client.parse("hallo")).intent == "greet"
    assert metrics.states[-1] is True


async def test_server_errors_and_garbage_are_outages() -> None:
    five_hundred = await client_with(lambda r: httpx.Response(500)).parse("hallo")
    garbage = await client_with(lambda r: httpx.Response(200, content=b"<html>")).parse("hallo")
    assert not five_hundred.available and not garbage.available
