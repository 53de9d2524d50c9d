"""The agent console in a real Chromium against the real ops API: claim, answer, close."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
from sqlalchemy import select

from bot.api.routes import build_api
from bot.services import Services
from bot.turns import run_turn
from dialogues.model import ButtonPress, TextMessage
from nlu.types import Parsed
from storage.agents import put_agent
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.models import Handoff, Notification
from storage.orders import record_event
from storage.records import add_note
from tests.conftest import API_TOKEN, NOW
from tests.factories import make_order, make_technician
from tests.threaded_server import serve_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium calls home, and this machine's closed
# network refuses the connections.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path("/tmp/console.png")
# The German customer writes markup too: the page must show it as text.
ASKS = {"de": "Wann kommt der Techniker heute? <b>dringend</b>", "ar": "متى يصل الفني اليوم؟"}
ANSWER = "Guten Tag, hier ist Anna"
NOTE = "bitte im Hinterhaus klingeln"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Launch Debian's Chromium once for the module; Playwright never fetches its own."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser` (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


PASSWORD = "agents-password-1"


@pytest.fixture
def api_url(services: Services) -> Iterator[str]:
    """Serve the real ops API with the console on a free port; yield its base URL."""
    with transaction(services.sessions) as session:
        for agent in ("anna", "bert"):
            put_agent(session, name=agent, password=PASSWORD, languages=[], now=NOW)
    with serve_in_thread(build_api(services), name="the ops API") as url:
        yield url


def open_handoff(services: Services, *, chat: int, language: str) -> tuple[str, int]:
    """Open a handoff as a customer does (the menu's button), then write once more."""
    with transaction(services.sessions) as session:
        if chat == 1:
            make_technician(session)
        order = make_order(session, technician_id="T-1", language=language)
        # The dispatcher's ETA gives the order a predicted window to show beside the booked one.
        record_event(session, order=order, type="eta", at=NOW,
                     eta=NOW + timedelta(days=1, hours=2, minutes=40), reason=None, now=NOW)
        add_note(session, order_id=order.id, text=NOTE, now=NOW)
        linked = ensure_chat(session, chat_key=f"tg:{chat}", telegram_chat_id=chat, now=NOW)
        link_chat(session, chat=linked, order=order)
        order_id, number = order.id, order.number
    for incoming in (ButtonPress("m:human"),
                     TextMessage(ASKS[language], Parsed("ask_status", 0.9, (), language))):
        run_turn(services, chat_key=f"tg:{chat}", order_id=order_id, incoming=incoming,
                 fallback_language=language)
    with transaction(services.sessions) as session:
        handoff = session.scalars(select(Handoff).where(Handoff.chat_key == f"tg:{chat}")).one()
        return number, handoff.id


def connect(page: Page, url: str, agent: str) -> None:
    """Open the console, get the login form, and log in as the agent."""
    page.goto(f"{url}/console")
    expect(page.locator("#log-in")).to_be_visible()
    page.fill("#name", agent)
    page.fill("#password", PASSWORD)
    page.click("#log-in")
    expect(page.locator("#whoami")).to_contain_text(f"Logged in as {agent}")


def test_an_agent_claims_answers_and_closes_a_handoff(
    browser: Browser, api_url: str, services: Services
) -> None:
    german, handoff_id = open_handoff(services, chat=1, language="de")
    arabic, _ = open_handoff(services, chat=2, language="ar")
    anna = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    anna.on("pageerror", lambda error: problems.append(str(error)))
    anna.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)
    connect(anna, api_url, "anna")

    item = anna.locator("#list button", has_text=german)
    expect(item).to_contain_text(ASKS["de"])
    expect(item).to_contain_text("waiting")
    arabic_line = anna.locator("#list button", has_text=arabic).locator(".last")
    expect(arabic_line).to_have_text(ASKS["ar"])
    assert arabic_line.evaluate("node => getComputedStyle(node).direction") == "rtl"
    anna.select_option("#language", "ar")
    expect(anna.locator("#list button")).to_have_count(1)
    anna.select_option("#language", "")
    expect(anna.locator("#list button")).to_have_count(2)

    item.click()
    expect(anna.locator("#transcript li[data-from=customer]").last).to_have_text(
        f"Customer · 2026-11-23 08:00 · ask_status{ASKS['de']}")
    expect(anna.locator("#transcript b")).to_have_count(0)
    order = anna.locator("#order")
    expect(order).to_contain_text("Booked2026-11-24 10:00–12:00")  # Berlin time
    expect(order).to_contain_text("Predicted2026-11-24 10:20–11:00")  # the ETA ± 20 min
    expect(order).to_contain_text("Jonas Becker")
    expect(order).to_contain_text(NOTE)
    expect(order).to_contain_text("booked 2026-11-24 10:00–12:00 · by operator")
    expect(anna.locator("#send")).to_be_disabled()  # nobody may answer before claiming

    anna.click("#claim")
    expect(anna.locator("#send")).to_be_enabled()
    anna.fill("#message", ANSWER)
    anna.click("#send")
    expect(anna.locator("#transcript li[data-from=agent]")).to_contain_text(ANSWER)

    bert = browser.new_page()
    connect(bert, api_url, "bert")
    bert.locator("#list button", has_text=german).click()
    expect(bert.locator("#transcript")).to_contain_text(ANSWER)
    bert.click("#claim")
    expect(bert.locator("#error")).to_have_text(
        f"Could not claim: handoff {handoff_id} is held by anna")  # the 409's detail

    anna.screenshot(path=str(SCREENSHOT), full_page=True)
    anna.fill("#close-note", "ETA mitgeteilt")
    anna.click("#close")
    expect(anna.locator("#detail-title")).to_contain_text("closed")
    expect(anna.locator("#list button")).to_have_count(1)  # only the Arabic one is open
    assert not problems

    with transaction(services.sessions) as session:
        handoff = session.get_one(Handoff, handoff_id)
        assert (handoff.status, handoff.claimed_by, handoff.closed_by, handoff.close_note) == (
            "closed", "anna", "anna", "ETA mitgeteilt")
        queued = session.scalars(select(Notification).where(
            Notification.kind == "agent_message")).one()
        assert queued.payload["chat_key"] == "tg:1" and queued.payload["text"] == ANSWER
    seen = httpx.get(f"{api_url}/api/v1/handoffs/{handoff_id}",
                     headers={"Authorization": f"Bearer {API_TOKEN}"}).json()
    assert [m for m in seen["messages"] if m["from"] == "agent"] == [
        {"from": "agent", "agent": "anna", "text": ANSWER, "at": "2026-11-23T08:00:00+01:00"}]


def test_the_page_survives_missing_fields_and_names_a_422(
    browser: Browser, api_url: str
) -> None:
    bare = {"id": 7, "status": "waiting", "messages": [{"text": "hallo"}, {}], "order": None}

    def answer(route: Route) -> None:
        if route.request.method == "POST":
            route.fulfill(status=422, json={"detail": [
                {"loc": ["body", "text"], "msg": "String should have at least 1 character"}]})
        elif route.request.url.endswith("/handoffs"):
            route.fulfill(json=[{"id": 7}])
        else:
            route.fulfill(json=bare)

    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.route("**/console/api/handoffs**", answer)
    connect(page, api_url, "anna")
    page.locator("#list button").click()
    expect(page.locator("#detail-title")).to_have_text("Order — · waiting")
    expect(page.locator("#transcript li")).to_have_count(2)
    expect(page.locator("#order")).to_contain_text("Booked—")
    page.click("#claim")
    expect(page.locator("#error")).to_have_text(
        "Could not claim: text: String should have at least 1 character")
    assert not problems
