"""The trained model, served by the real Rasa server, through the bot's client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict

import pytest

from nlu.client import NluClient
from nlu.evaluate import parse_all, score_held_out
from nlu.project import PROJECT_ROOT, RasaServer
from nlu.training_data import LANGUAGES, load_examples
from nlu.types import Parsed

pytestmark = [pytest.mark.rasa, pytest.mark.slow]


@pytest.fixture(scope="module")
def held_out_results(rasa_server: RasaServer):  # type: ignore[no-untyped-def]
    examples = load_examples("tests")
    client = NluClient(rasa_server.url, timeout=30, fallback_threshold=0.3)
    parsed = asyncio.run(parse_all(client, examples))
    return examples, parsed


def test_every_intent_in_every_language_is_recognised_on_held_out_messages(
    held_out_results,  # type: ignore[no-untyped-def]
) -> None:
    examples, parsed = held_out_results
    hits: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for example, result in zip(examples, parsed, strict=True):
        hits[(example.language, example.intent)].append(result.intent == example.intent)
    weak = {key: f"{sum(v)}/{len(v)}" for key, v in hits.items() if sum(v) / len(v) < 0.5}
    assert len(hits) == 100 and weak == {}


def test_held_out_macro_f1_per_language(held_out_results) -> None:  # type: ignore[no-untyped-def]
    scores = score_held_out(*held_out_results)
    assert {s.language: round(s.macro_f1, 3) for s in scores if s.macro_f1 < 0.93} == {}


def test_language_is_identified_on_held_out_messages(
    held_out_results,  # type: ignore[no-untyped-def]
) -> None:
    examples, parsed = held_out_results
    # No prior here; in a chat the conversation's language decides the shortest messages.
    long_enough = [(e, p) for e, p in zip(examples, parsed, strict=True)
                   if sum(c.isalpha() for c in e.plain) >= 12]
    right = sum(1 for e, p in long_enough if p.language == e.language)
    assert right / len(long_enough) >= 0.98


def test_entities_come_back_normalised(rasa_server: RasaServer) -> None:
    async def both() -> tuple[Parsed, Parsed]:
        client = NluClient(rasa_server.url, timeout=30)
        order = await client.parse("meine auftragsnummer ist 48213377")
        language = await client.parse("can you write in german please")
        await client.close()
        return order, language

    order, language = asyncio.run(both())
    assert order.entity("order_number") == "48213377"
    assert language.intent == "change_language" and language.entity("language") == "de"


def test_parse_command_keeps_the_order_of_its_input(rasa_server: RasaServer) -> None:
    lines = [{"text": "wann kommt der techniker"}, {"text": "merhaba"}, "not an object",
             {"text": "когда придет мастер"}]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\n"
    env = {**os.environ, "TECHBOT_NLU__URL": rasa_server.url}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "nlu", "parse"], input=stdin,
                          capture_output=True, text=True, env=env, cwd=PROJECT_ROOT,
                          timeout=120, check=False)
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o.get("intent") for o in out] == ["ask_status", "greet", None, "ask_status"]
    assert [o.get("language") for o in out] == ["de", "tr", None, "ru"]
    assert "error" in out[2]


def test_the_client_survives_a_killed_server_and_recovers() -> None:
    from nlu.commands import free_port

    server = RasaServer(port=free_port())
    server.start()
    client = NluClient(server.url, timeout=2)

    async def scenario() -> tuple[str, bool, str]:
        before = await client.parse("wann kommt der techniker")
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        during = await client.parse("wann kommt der techniker")
        server.start()
        after = await client.parse("wann kommt der techniker")
        await client.close()
        return before.intent, during.available, after.intent

    try:
        before, available, after = asyncio.run(scenario())
    finally:
        server.stop()
    assert (before, available, after) == ("ask_status", False, "ask_status")


class Failures:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def failed(self, reason: str) -> None:
        self.reasons.append(reason)

    def up(self, available: bool) -> None:
        pass


def test_two_servers_one_killed_mid_run_every_parse_is_answered() -> None:
    from nlu.commands import free_port

    servers = [RasaServer(port=free_port()), RasaServer(port=free_port())]
    failures = Failures()
    texts = [e.plain for e in load_examples("tests")][:600]

    async def scenario() -> list[Parsed]:
        client = NluClient([s.url for s in servers], timeout=2, metrics=failures)
        gate = asyncio.Semaphore(8)  # a burst: more at once than the servers take
        done = 0

        async def one(text: str) -> Parsed:
            nonlocal done
            async with gate:
                parsed = await client.parse(text)
            done += 1
            if done == 200:  # mid-run, with requests in flight on both servers
                assert servers[0].process is not None
                os.killpg(servers[0].process.pid, signal.SIGKILL)
            return parsed

        results = await asyncio.gather(*(one(t) for t in texts))
        await client.close()
        return list(results)

    try:
        for server in servers:
            server.start()
        results = asyncio.run(scenario())
    finally:
        for server in servers:
            server.stop()
    assert [r for r in results if not r.available] == []
    assert failures.reasons  # the killed server's requests failed, and were answered elsewhere
    assert sum(r.intent != "nlu_fallback" for r in results) > 0.9 * len(results)


@pytest.mark.parametrize("language", LANGUAGES)
def test_language_folder_exists_for(language: str) -> None:
    assert (PROJECT_ROOT / "nlu" / "data" / language).is_dir()
    assert (PROJECT_ROOT / "nlu" / "tests" / f"{language}.yml").is_file()
