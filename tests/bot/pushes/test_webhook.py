"""The handoff webhook: each event posted, signed with HMAC-SHA256, retried with backoff."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.pushes.webhook import WebhookSender
from bot.services import Services
from bot.settings import load_settings
from bot.turns import run_turn
from dialogues.model import ButtonPress, TextMessage
from nlu.types import Parsed
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.models import WebhookDelivery
from tests.conftest import NOW
from tests.factories import make_order

SECRET = "webhook-secret-for-the-tests-0123"


class Receiver(ThreadingHTTPServer):
    """A CRM stand-in: keeps every POST, answers from a script of status codes."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.got.append((dict(self.headers), body))
        self.send_response(self.server.answers.pop(0) if self.server.answers else 204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def hooked(services: Services, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Services:
    monkeypatch.setenv("TECHBOT_HANDOFF__WEBHOOK_URL",
                       f"http://127.0.0.1:{receiver.server_address[1]}/techbot")
    monkeypatch.setenv("TECHBOT_HANDOFF__WEBHOOK_SECRET", SECRET)
    services.settings = load_settings()
    return services


def test_events_are_signed_retried_and_delivered_in_order(
    hooked: Services, receiver: Receiver
) -> None:
    clock = [NOW]
    hooked.clock = lambda: clock[0]
    with transaction(hooked.sessions) as session:
        order = make_order(session)
        link_chat(session, chat=ensure_chat(session, chat_key="tg:9", telegram_chat_id=9,
                                            now=NOW), order=order)
        order_id = order.id
    ask = TextMessage("ich will einen menschen", Parsed("human_handoff", 0.9, (), "de"))
    for incoming in (ask, TextMessage("hallo?", Parsed("greet", 0.9, (), "de")),
                     ButtonPress("h:back")):
        run_turn(hooked, chat_key="tg:9", order_id=order_id, incoming=incoming,
                 fallback_language="de")
    receiver.answers = [500]  # the CRM is down for the first try
    sender = WebhookSender(hooked)

    async def post_all() -> None:
        await sender.run_once()
        clock[0] += timedelta(minutes=5)  # past the first backoff
        await sender.run_once()
        await sender.client.aclose()

    asyncio.run(post_all())
    events = [json.loads(body)["event"] for _, body in receiver.got]
    assert events == ["opened", "customer_message", "closed", "opened"]  # the retry last
    for headers, body in receiver.got:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Techbot-Signature"], expected)
    message = json.loads(receiver.got[1][1])
    assert message["text"] == "hallo?" and message["handoff"]["order"] == order.number
    with transaction(hooked.sessions) as session:
        rows = session.query(WebhookDelivery).order_by(WebhookDelivery.id).all()
        assert all(r.delivered_at is not None for r in rows)
        assert [r.attempts for r in rows] == [2, 1, 1]


def test_a_webhook_url_without_a_secret_is_refused_at_start(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("TECHBOT_HANDOFF__WEBHOOK_URL", "https://crm.example/hook")
    with pytest.raises(Exception, match="TECHBOT_HANDOFF__WEBHOOK_SECRET"):
        load_settings().require_handoff_webhook_secret()
