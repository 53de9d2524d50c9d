"""End to end: a customer on the emulator asks for a person, an agent answers, the bot returns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from bot.app import Running, running_service
from bot.settings import load_settings
from nlu.commands import free_port
from nlu.project import PROJECT_ROOT, RasaServer
from storage.agents import put_agent
from storage.db import transaction
from storage.demo import DemoResult
from tests.telegram.conftest import API_TOKEN
from tests.telegram.emulator import BOT_TOKEN, Customer, EmulatorRequest, buttons
from tests.telegram.test_end_to_end import PHRASES, said, token_of

pytestmark = [pytest.mark.emulator, pytest.mark.rasa, pytest.mark.slow]

ASK_FOR_A_PERSON = {
    "de": "ich möchte mit einem menschen sprechen",
    "en": "i want to talk to a real person",
    "tr": "bir insanla konuşmak istiyorum",
    "ru": "хочу поговорить с живым человеком",
    "ar": "أريد التحدث مع موظف",
}
STILL_THERE = {"de": "hallo, ist da jemand?", "en": "hello, anyone there?",
               "tr": "merhaba, kimse var mı?", "ru": "алло, есть кто-нибудь?",
               "ar": "مرحبا، هل يوجد أحد؟"}


@pytest.fixture
async def service(service_env: None, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    """The service with a team at work around the clock (the test runs at any hour)."""
    monkeypatch.setenv("TECHBOT_HANDOFF__HOURS", "mon-sun 00:00-24:00")
    async with running_service(load_settings(), telegram_request=EmulatorRequest()) as running:
        yield running


async def no_reply(customer: Customer, wait: float = 2.0) -> bool:
    try:
        await customer.replies(1, wait=wait)
    except AssertionError:
        return True
    return False


@pytest.mark.parametrize("language", sorted(PHRASES))
async def test_a_person_takes_over_answers_and_hands_back(
    service: Running, demo: DemoResult, emulator: str, language: str
) -> None:
    number, token = token_of(demo, language)
    customer = Customer(emulator, chat_id=7000 + sorted(PHRASES).index(language),
                        language=language)
    await customer.link(token)
    await customer.say(ASK_FOR_A_PERSON[language])
    opened = await customer.reply()
    assert said(language, "I have passed our conversation on to a colleague from the service "
                          "team. They will answer you here in this chat.") in opened["text"]
    assert buttons(opened)[-1][1] == "h:back"
    await customer.say(STILL_THERE[language])
    assert await no_reply(customer)  # the bot stays quiet; the message waits for the agent

    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.api),
                                 base_url="http://ops", headers=headers) as ops:
        listed = (await ops.get("/api/v1/handoffs", params={"language": language})).json()
        mine = next(h for h in listed if h["order"] == number)
        assert mine["last_customer_message"] == STILL_THERE[language]
        one = (await ops.get(f"/api/v1/handoffs/{mine['id']}")).json()
        texts = [m["text"] for m in one["messages"]]
        assert ASK_FOR_A_PERSON[language] in texts and STILL_THERE[language] in texts
        assert one["messages"][0]["intent"] == "human_handoff"
        claimed = await ops.post(f"/api/v1/handoffs/{mine['id']}/claim", json={"agent": "Anna"})
        assert claimed.status_code == 200
        assert "Anna" in (await customer.reply())["text"]  # who answers now
        sent = await ops.post(f"/api/v1/handoffs/{mine['id']}/messages",
                              json={"agent": "Anna", "text": "Ich sehe mir das an."})
        assert sent.status_code == 202
        assert "Ich sehe mir das an." in (await customer.reply())["text"]
        closed = await ops.post(f"/api/v1/handoffs/{mine['id']}/close",
                                json={"agent": "Anna", "note": "erledigt"})
        assert closed.status_code == 200
        assert "Anna" in (await customer.reply())["text"]
    await customer.say(PHRASES[language][0])
    assert said(language, "Your visit is booked for {window}.") in (await customer.reply())[
        "text"]
    await customer.close()


# `techbot run` as its own process, with the emulator's answers mended as in-process tests do.
SERVE = """
import asyncio, os, uvicorn
from bot.app import running_service
from bot.settings import load_settings
from tests.telegram.emulator import EmulatorRequest

async def main():
    async with running_service(load_settings(), telegram_request=EmulatorRequest()) as running:
        config = uvicorn.Config(running.api, host="127.0.0.1", log_level="warning",
                                port=int(os.environ["TECHBOT_API__PORT"]))
        await uvicorn.Server(config).serve()

asyncio.run(main())
"""


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    log = open(Path(env["TECHBOT_DATA_DIR"]) / "run.log", "a")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-c", SERVE], env=env, stdout=log,
                               stderr=subprocess.STDOUT, text=True, cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{env['TECHBOT_API__PORT']}/readyz",
                         timeout=1).status_code == 200:
                return process
        time.sleep(0.2)
    process.kill()
    raise AssertionError("techbot run did not become ready")


async def test_a_handoff_survives_the_service_being_killed_and_restarted(
    emulator: str, rasa_server: RasaServer, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "TECHBOT_DATA_DIR": str(tmp_path), "TECHBOT_API__PORT": str(port),
           "TECHBOT_API__TOKEN": API_TOKEN, "TECHBOT_NLU__URL": rasa_server.url,
           "TECHBOT_TELEGRAM__TOKEN": BOT_TOKEN, "TECHBOT_TELEGRAM__BASE_URL": emulator,
           "TECHBOT_TELEGRAM__POLL_INTERVAL_SECONDS": "0.05", "TECHBOT_DATABASE__URL": "",
           "TECHBOT_HANDOFF__HOURS": "mon-sun 00:00-24:00"}
    base = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    service = _start(env)
    customer = Customer(emulator, chat_id=7100, language="de")
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as ops:
            start = datetime.now(UTC) + timedelta(days=2)
            assert (await ops.put("/orders/62000001", json={
                "customer": {"name": "Kunde", "postal_code": "10115", "language": "de"},
                "address": {"street": "Weg 2", "postal_code": "10115", "city": "Berlin"},
                "appointment": {"start": start.isoformat(),
                                "end": (start + timedelta(hours=2)).isoformat()}})
                    ).status_code == 201
            token = (await ops.post("/orders/62000001/link")).json()["token"]
            await customer.link(token)
            await customer.say(ASK_FOR_A_PERSON["de"])
            await customer.reply()
            service.kill()  # SIGKILL: nothing of the handoff may live only in the process
            service.wait()
            await customer.say("sind Sie noch da?")  # Telegram keeps it until the bot polls
            service = _start(env)
            assert await no_reply(customer, wait=3)
            listed = (await ops.get("/handoffs")).json()
            assert [h["status"] for h in listed] == ["waiting"]
            assert listed[0]["last_customer_message"] == "sind Sie noch da?"
            handoff = listed[0]["id"]
            assert (await ops.post(f"/handoffs/{handoff}/claim",
                                   json={"agent": "Anna"})).status_code == 200
            assert (await ops.post(f"/handoffs/{handoff}/messages", json={
                "agent": "Anna", "text": "Ja, ich bin da."})).status_code == 202
            got = [m["text"] for m in await customer.replies(2)]
            assert "Anna" in got[0] and "Ja, ich bin da." in got[1]
    finally:
        await customer.close()
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=15)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: run `make browser`")
async def test_an_agent_in_the_browser_answers_a_customer_on_the_emulator(
    service: Running, demo: DemoResult, emulator: str
) -> None:
    from playwright.async_api import async_playwright, expect

    with transaction(service.services.sessions) as session:
        put_agent(session, name="Anna", password="anna-password-1", languages=["de", "en"],
                  now=service.services.clock())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(service.api, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    number, token = token_of(demo, "de")
    customer = Customer(emulator, chat_id=7200, language="de")
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.05)
        await customer.link(token)
        await customer.say(ASK_FOR_A_PERSON["de"])
        await customer.reply()
        await customer.say("Der Techniker soll bitte vorher anrufen.")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                       args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"http://127.0.0.1:{port}/console")
            await page.fill("#name", "Anna")
            await page.fill("#password", "anna-password-1")
            await page.click("#log-in")
            item = page.locator("#list button", has_text=number)
            await expect(item).to_contain_text("Der Techniker soll bitte vorher anrufen.")
            await item.click()
            await expect(page.locator("#transcript")).to_contain_text(ASK_FOR_A_PERSON["de"])
            await page.click("#claim")
            assert "Anna" in (await customer.reply())["text"]
            await page.fill("#message", "Gern, ich gebe es weiter. Anna")
            await page.click("#send")
            assert "Gern, ich gebe es weiter." in (await customer.reply())["text"]
            await page.fill("#close-note", "Anruf vorab notiert")
            await page.click("#close")
            await expect(page.locator("#detail-title")).to_contain_text("closed")
            assert "Anna" in (await customer.reply())["text"]
            await browser.close()
        await customer.say(PHRASES["de"][0])
        assert said("de", "Your visit is booked for {window}.") in (await customer.reply())[
            "text"]
    finally:
        await customer.close()
        server.should_exit = True
        await serving
