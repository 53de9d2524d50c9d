"""Handoff to a person: the bot steps aside, agents claim, answer and close; the customer knows."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from bot.channels.base import TryLater
from bot.chats import delete
from bot.handoffs import tell_overdue
from bot.pushes.sender import Sender
from bot.services import Services
from bot.turns import run_turn
from dialogues.model import ButtonPress, Reply, TextMessage
from nlu.types import Entity, Parsed
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.models import Handoff, HandoffMessage, Notification, Order
from tests.conftest import NOW
from tests.factories import make_order, make_technician

CHAT = "tg:501"


def say(intent: str, text: str, language: str = "de") -> TextMessage:
    return TextMessage(text, Parsed(intent, 0.9, tuple[Entity, ...](), language))


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Chats:
    """A channel that records what each chat received; fails every n-th delivery if asked."""

    fail_every: int = 0
    prefix: str = "tg:"
    got: dict[str, list[str]] = field(default_factory=dict)
    calls: int = 0

    async def deliver(self, chat_key: str, telegram_chat_id: int | None,
                      replies: tuple[Reply, ...]) -> None:
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise TryLater("502 Bad Gateway")
        self.got.setdefault(chat_key, []).extend(r.text for r in replies)


@pytest.fixture
def clock(services: Services) -> Clock:
    clock = Clock()
    services.clock = clock
    return clock


@pytest.fixture
def order_id(services: Services, clock: Clock) -> int:
    with transaction(services.sessions) as session:
        make_technician(session)
        order = make_order(session, window=(NOW + timedelta(days=1), NOW + timedelta(days=1,
                                                                                     hours=2)),
                           technician_id="T-1")
        chat = ensure_chat(session, chat_key=CHAT, telegram_chat_id=501, now=NOW)
        link_chat(session, chat=chat, order=order)
        return order.id


def turn(services: Services, order_id: int, incoming: TextMessage | ButtonPress,
         chat_key: str = CHAT) -> tuple[Reply, ...]:
    return run_turn(services, chat_key=chat_key, order_id=order_id, incoming=incoming,
                    fallback_language="de")


def deliver(services: Services, chats: Chats, rounds: int = 1) -> None:
    sender = Sender(services, [chats])
    for _ in range(rounds):
        asyncio.run(sender.run_once())


def test_a_person_answers_in_the_chat_and_hands_back(
    services: Services, clock: Clock, order_id: int, api: TestClient
) -> None:
    turn(services, order_id, say("ask_status", "wann kommt der techniker"))
    opened = turn(services, order_id, say("human_handoff", "ich will mit einem menschen reden"))
    text = opened[0].text
    assert "Platz 1 in der Warteschlange" in text
    assert opened[0].flat_buttons[-1].payload == "h:back"
    # The customer's next message reaches the handoff, and the bot does not answer it.
    assert turn(services, order_id, say("ask_status", "hallo? wann kommt er")) == ()

    listed = api.get("/api/v1/handoffs", params={"status": "waiting", "language": "de"}).json()
    assert [h["status"] for h in listed] == ["waiting"]
    assert listed[0]["last_customer_message"] == "hallo? wann kommt er"
    assert listed[0]["reason"] == "customer_asked" and listed[0]["queue_position"] == 1
    one = api.get(f"/api/v1/handoffs/{listed[0]['id']}").json()
    said = [(m["from"], m["text"]) for m in one["messages"]]
    assert said[0] == ("customer", "wann kommt der techniker") and said[1][0] == "bot"
    assert ("customer", "hallo? wann kommt er") in said
    assert one["messages"][0]["intent"] == "ask_status"
    assert one["order"]["booked_window"] is not None and one["customer"]["name"]
    handoff = one["id"]

    assert api.post(f"/api/v1/handoffs/{handoff}/claim", json={"agent": "anna"}).status_code == 200
    refused = api.post(f"/api/v1/handoffs/{handoff}/claim", json={"agent": "bob"})
    assert refused.status_code == 409 and "anna" in refused.json()["detail"]
    assert api.post(f"/api/v1/handoffs/{handoff}/messages",
                    json={"agent": "bob", "text": "hallo"}).status_code == 409
    sent = api.post(f"/api/v1/handoffs/{handoff}/messages", json={
        "agent": "anna", "text": "Guten Tag, hier ist Anna.\nWie kann ich helfen?"})
    assert sent.status_code == 202 and sent.json()["status"] == "queued"
    chats = Chats()
    deliver(services, chats)
    got = chats.got[CHAT]
    assert any("anna" in line and "service" in line.lower() for line in got)  # who answers
    assert sum("Guten Tag, hier ist Anna." in line for line in got) == 1

    closed = api.post(f"/api/v1/handoffs/{handoff}/close", json={"agent": "anna",
                                                                 "note": "ETA erklärt"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert closed.json()["close_note"] == "ETA erklärt"
    deliver(services, chats)
    assert "anna" in chats.got[CHAT][-1] and "ETA erklärt" not in chats.got[CHAT][-1]
    # The bot answers again.
    again = turn(services, order_id, say("ask_status", "wann kommt der techniker"))
    assert again and "gebucht" in again[0].text
    assert api.post(f"/api/v1/handoffs/{handoff}/close",
                    json={"agent": "anna"}).status_code == 409


def test_a_waiting_customer_hears_their_place_at_most_every_ten_minutes(
    services: Services, clock: Clock, order_id: int
) -> None:
    turn(services, order_id, say("human_handoff", "einen menschen bitte"))
    assert turn(services, order_id, say("greet", "hallo?")) == ()
    clock.now += timedelta(minutes=11)
    reminder = turn(services, order_id, say("greet", "ist da jemand?"))
    assert len(reminder) == 1 and "1" in reminder[0].text
    assert turn(services, order_id, say("greet", "hallo??")) == ()
    # A button of the bot's while a person holds the chat: the way back is shown.
    pressed = turn(services, order_id, ButtonPress("m:move"))
    assert pressed[0].flat_buttons[0].payload == "h:back"


def test_the_queue_place_counts_the_customers_of_the_same_language_before(
    services: Services, clock: Clock, order_id: int
) -> None:
    places = []
    for n, language in enumerate(["de", "en", "de", "de"]):
        with transaction(services.sessions) as session:
            order = make_order(session, number=f"4100000{n}", language=language)
            chat = ensure_chat(session, chat_key=f"tg:60{n}", telegram_chat_id=600 + n, now=NOW)
            link_chat(session, chat=chat, order=order)
            other = order.id
        clock.now += timedelta(minutes=1)
        reply = run_turn(services, chat_key=f"tg:60{n}", order_id=other,
                         incoming=say("human_handoff", "human please", language),
                         fallback_language=language)
        places.append(reply[0].text)
    assert "number 1" in places[1]  # the English customer is first of their queue
    assert "Platz 3" in places[3]


def test_outside_business_hours_the_customer_learns_when_the_team_is_back(
    services: Services, clock: Clock, order_id: int
) -> None:
    clock.now = datetime.fromisoformat("2026-11-28T15:00:00+01:00")  # a Saturday afternoon
    reply = turn(services, order_id, say("human_handoff", "ich will einen menschen"))[0].text
    assert "Montag" in reply and "08:00" in reply  # mon-fri 08:00-18:00, Europe/Berlin
    assert "08:15" in reply  # the claim deadline: 15 minutes of opening hours


def test_an_unclaimed_handoff_is_told_once_and_offers_a_call_back(
    services: Services, clock: Clock, order_id: int
) -> None:
    turn(services, order_id, say("human_handoff", "ich will einen menschen"))
    clock.now += timedelta(minutes=14)
    assert tell_overdue(services, now=clock.now) == 0
    clock.now += timedelta(minutes=2)
    assert tell_overdue(services, now=clock.now) == 1
    assert tell_overdue(services, now=clock.now) == 0  # told once
    chats = Chats()
    deliver(services, chats)
    told = chats.got[CHAT][-1]
    assert "Rückruf" in told
    back = turn(services, order_id, ButtonPress("h:callback"))[0].text
    assert "123" in back  # the last digits of the order's phone
    with transaction(services.sessions) as session:
        handoff = session.query(Handoff).one()
        assert handoff.callback_requested_at is not None and handoff.status == "waiting"


def test_the_customer_can_go_back_to_the_bot_and_delete_the_chat(
    services: Services, clock: Clock, order_id: int, api: TestClient
) -> None:
    turn(services, order_id, say("human_handoff", "ich will einen menschen"))
    back = turn(services, order_id, ButtonPress("h:back"))
    assert back[0].flat_buttons[0].payload == "m:status"
    assert turn(services, order_id, say("ask_status", "wann kommt er"))  # the bot again
    assert api.get("/api/v1/handoffs", params={"status": "closed"}).json()[0][
        "closed_by"] == "customer"
    # An old Back button after the handoff ended is harmless.
    assert turn(services, order_id, ButtonPress("h:back"))[0].flat_buttons


@pytest.mark.parametrize("agents", [8])
def test_agents_racing_for_one_handoff_exactly_one_wins(
    services: Services, clock: Clock, order_id: int, api: TestClient, agents: int
) -> None:
    turn(services, order_id, say("human_handoff", "ich will einen menschen"))
    handoff = api.get("/api/v1/handoffs").json()[0]["id"]
    start = threading.Barrier(agents)
    answers: list[int] = []

    def claim(name: str) -> None:
        start.wait()
        answers.append(api.post(f"/api/v1/handoffs/{handoff}/claim",
                                json={"agent": name}).status_code)

    threads = [threading.Thread(target=claim, args=(f"agent{n}",)) for n in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200] + [409] * (agents - 1)
    with transaction(services.sessions) as session:
        claimed = session.query(Notification).filter_by(kind="handoff_claimed").all()
        assert len(claimed) == 1  # the customer hears of one agent


def test_agent_messages_arrive_once_while_the_bot_api_fails_every_tenth_time(
    services: Services, clock: Clock, order_id: int, api: TestClient
) -> None:
    turn(services, order_id, say("human_handoff", "ich will einen menschen"))
    handoff = api.get("/api/v1/handoffs").json()[0]["id"]
    api.post(f"/api/v1/handoffs/{handoff}/claim", json={"agent": "anna"})
    for n in range(30):
        assert api.post(f"/api/v1/handoffs/{handoff}/messages",
                        json={"agent": "anna", "text": f"Nachricht {n}"}).status_code == 202
    chats = Chats(fail_every=10)
    for _ in range(40):  # retries wait for their backoff: move the clock past it
        deliver(services, chats)
        clock.now += timedelta(minutes=11)
    got = [line for line in chats.got[CHAT] if "Nachricht" in line]
    assert chats.calls > len(got)  # some deliveries failed and were retried
    assert sorted(int(line.rsplit(" ", 1)[1]) for line in got) == list(range(30))


def test_every_handoff_route_refuses_a_missing_or_wrong_token(api: TestClient) -> None:
    routes = [("get", "/api/v1/handoffs"), ("get", "/api/v1/handoffs/1"),
              ("post", "/api/v1/handoffs/1/claim"), ("post", "/api/v1/handoffs/1/messages"),
              ("post", "/api/v1/handoffs/1/close")]
    for token in (None, "wrong-token-0123456789"):
        headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}
        for method, path in routes:
            answer = getattr(api, method)(path, headers=headers)
            assert answer.status_code == 401, (method, path, token)


def test_bad_agent_input_gets_a_4xx_that_names_the_field(
    services: Services, clock: Clock, order_id: int, api: TestClient
) -> None:
    assert api.get("/api/v1/handoffs/999").status_code == 404
    assert api.get("/api/v1/handoffs", params={"status": "lost"}).status_code == 422
    turn(services, order_id, say("human_handoff", "ich will einen menschen"))
    handoff = api.get("/api/v1/handoffs").json()[0]["id"]
    api.post(f"/api/v1/handoffs/{handoff}/claim", json={"agent": "anna"})
    blank = api.post(f"/api/v1/handoffs/{handoff}/messages", json={"agent": "anna", "text": " "})
    assert blank.status_code == 422 and blank.json()["detail"][0]["loc"][-1] == "text"
    with transaction(services.sessions) as session:
        assert session.get(Order, order_id) is not None


def test_the_expected_wait_comes_from_recent_claims(
    services: Services, clock: Clock, order_id: int, api: TestClient
) -> None:
    for n, minutes in enumerate([4, 6, 10]):
        with transaction(services.sessions) as session:
            order = make_order(session, number=f"4200000{n}")
            link_chat(session, chat=ensure_chat(session, chat_key=f"tg:70{n}",
                                                telegram_chat_id=700 + n, now=clock.now),
                      order=order)
            other = order.id
        run_turn(services, chat_key=f"tg:70{n}", order_id=other,
                 incoming=say("human_handoff", "einen menschen bitte"), fallback_language="de")
        clock.now += timedelta(minutes=minutes)
        handoff = api.get("/api/v1/handoffs", params={"status": "waiting"}).json()[0]["id"]
        api.post(f"/api/v1/handoffs/{handoff}/claim", json={"agent": "anna"})
    reply = turn(services, order_id, say("human_handoff", "ich will einen menschen"))[0].text
    assert "etwa 6 Minuten" in reply  # the median of 4, 6 and 10


def test_deleting_the_chat_closes_the_handoff_and_forgets_its_messages(
    services: Services, clock: Clock, order_id: int
) -> None:
    turn(services, order_id, say("human_handoff", "ich will einen menschen"))
    turn(services, order_id, say("leave_note", "meine nummer ist 0171 1234567"))
    delete(services, chat_key=CHAT, confirmed=True)
    with transaction(services.sessions) as session:
        handoff = session.query(Handoff).one()
        assert handoff.status == "closed" and handoff.chat_key is None
        assert session.query(HandoffMessage).count() == 0
