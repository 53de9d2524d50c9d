"""The agent console: own logins, signed HttpOnly cookies, CSRF on every change, own languages."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bot.api.routes import build_api
from bot.services import Services
from bot.turns import run_turn
from dialogues.model import ButtonPress
from storage.agents import disable_agent, put_agent
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from tests.conftest import NOW
from tests.factories import make_order

IDS = ("logout", "whoami", "status", "language", "list", "transcript", "order",
       "message", "send", "close-note", "close", "claim", "error")
PASSWORD = "correct horse battery"


@pytest.fixture
def browser_client(services: Services) -> Iterator[TestClient]:
    """A client with no bearer token: what an agent's browser is."""
    with transaction(services.sessions) as session:
        put_agent(session, name="anna", password=PASSWORD, languages=[], now=NOW)
        put_agent(session, name="deniz", password=PASSWORD, languages=["tr"], now=NOW)
    with TestClient(build_api(services), base_url="https://console.test",
                    raise_server_exceptions=False) as client:
        yield client


def log_in(client: TestClient, name: str = "anna", password: str = PASSWORD) -> str:
    form = client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post("/console/login", data={"name": name, "password": password,
                                                 "csrf": csrf.group(1)}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = client.get("/console").text
    token = re.search(r'name="techbot-csrf" content="([^"]+)"', page)
    assert token is not None
    return token.group(1)


def handoff_in(services: Services, language: str, chat: int) -> int:
    with transaction(services.sessions) as session:
        order = make_order(session, language=language)
        link_chat(session, chat=ensure_chat(session, chat_key=f"tg:{chat}",
                                            telegram_chat_id=chat, now=NOW), order=order)
        order_id = order.id
    run_turn(services, chat_key=f"tg:{chat}", order_id=order_id, incoming=ButtonPress("m:human"),
             fallback_language=language)
    return order_id


def test_without_a_session_the_console_asks_to_log_in(browser_client: TestClient) -> None:
    first = browser_client.get("/console", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/console/login"
    assert browser_client.get("/console/api/handoffs").status_code == 401
    form = browser_client.get("/console/login")
    assert form.headers["cache-control"] == "no-store"
    assert "form-action 'self'" in form.headers["content-security-policy"]


def test_a_wrong_password_or_an_old_form_is_refused(browser_client: TestClient) -> None:
    form = browser_client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    wrong = browser_client.post("/console/login", data={
        "name": "anna", "password": "guess", "csrf": csrf.group(1)})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', wrong.text)  # each form has its own
    assert csrf is not None
    nobody = browser_client.post("/console/login", data={
        "name": "mallory", "password": PASSWORD, "csrf": csrf.group(1)})
    assert nobody.status_code == 401 and "Wrong name or password" in nobody.text
    browser_client.cookies.clear()  # a form posted from elsewhere carries no login cookie
    forged = browser_client.post("/console/login", data={
        "name": "anna", "password": PASSWORD, "csrf": csrf.group(1)})
    assert forged.status_code == 403


def test_the_session_cookie_is_signed_httponly_and_strict(browser_client: TestClient) -> None:
    form = browser_client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = browser_client.post("/console/login", data={
        "name": "anna", "password": PASSWORD, "csrf": csrf.group(1)}, follow_redirects=False)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    browser_client.cookies.set("techbot_console", "eyJhZ2VudCI6ICJhbm5hIn0.forged",
                               domain="console.test", path="/console")
    assert browser_client.get("/console/api/handoffs").status_code == 401


def test_a_change_needs_the_sessions_csrf_token(
    browser_client: TestClient, services: Services
) -> None:
    handoff_in(services, "de", 1)
    token = log_in(browser_client)
    handoff = browser_client.get("/console/api/handoffs").json()[0]["id"]
    assert browser_client.post(f"/console/api/handoffs/{handoff}/claim").status_code == 403
    claimed = browser_client.post(f"/console/api/handoffs/{handoff}/claim",
                                  headers={"X-CSRF-Token": token})
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "anna"
    sent = browser_client.post(f"/console/api/handoffs/{handoff}/messages",
                               headers={"X-CSRF-Token": token}, json={"text": "Hallo!"})
    assert sent.status_code == 202
    closed = browser_client.post(f"/console/api/handoffs/{handoff}/close",
                                 headers={"X-CSRF-Token": token}, json={"note": "ok"})
    assert closed.json()["closed_by"] == "anna"  # the session's agent, not a typed name


def test_an_agent_sees_only_the_languages_they_answer(
    browser_client: TestClient, services: Services
) -> None:
    handoff_in(services, "de", 1)
    handoff_in(services, "tr", 2)
    token = log_in(browser_client, "deniz")
    mine = browser_client.get("/console/api/handoffs").json()
    assert [h["language"] for h in mine] == ["tr"]
    assert browser_client.get("/console/api/handoffs", params={"language": "de"}).json() == []
    german = browser_client.get("/api/v1/handoffs", headers={
        "Authorization": "Bearer test-token-0123456789abcdef"}).json()
    other = next(h["id"] for h in german if h["language"] == "de")
    assert browser_client.get(f"/console/api/handoffs/{other}").status_code == 404
    assert browser_client.post(f"/console/api/handoffs/{other}/claim",
                               headers={"X-CSRF-Token": token}).status_code == 404


def test_a_disabled_agent_is_out_at_once_and_logout_ends_the_session(
    browser_client: TestClient, services: Services
) -> None:
    token = log_in(browser_client)
    page = browser_client.get("/console")
    for element in IDS:
        assert f'id="{element}"' in page.text, element
    policy = page.headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert script is not None and "unsafe-inline" not in policy
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy
    assert not re.search(r"(src|href)=|https?://|@import|url\(", page.text)
    assert "innerHTML" not in page.text
    out = browser_client.post("/console/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    assert browser_client.get("/console/api/handoffs").status_code == 401
    log_in(browser_client)
    with transaction(services.sessions) as session:
        disable_agent(session, name="anna")
    assert browser_client.get("/console/api/handoffs").status_code == 401
