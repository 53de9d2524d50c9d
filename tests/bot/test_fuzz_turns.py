"""Fuzzing the turn runner with real storage: any text, any button, never another's data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from bot.services import Services
from bot.turns import run_turn, texts_factory
from dialogues.model import ButtonPress, TextMessage
from nlu.types import Entity, Parsed
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.handoffs import open_handoff_of_chat
from storage.models import Handoff
from tests.conftest import NOW
from tests.factories import make_order, make_slots, make_technician

INTENTS = ["greet", "goodbye", "thank", "affirm", "deny", "help", "ask_status", "reschedule",
           "cancel", "choose_slot", "identify", "leave_note", "ask_preparation",
           "verify_technician", "human_handoff", "give_feedback", "ask_compensation",
           "change_language", "stop_notifications", "out_of_scope", "nlu_fallback"]
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                max_size=4096) | st.sampled_from([
                    "", " ", "\x00\x07", "‏مرحبا‎", "👍" * 50, "2", "99", "０", "٣",
                    "40000002 10119", "die zweite", "Donnerstag nachmittag", "\u202eabc"])
payloads = st.text(max_size=80) | st.from_regex(r"[a-z]:[0-9a-z:]{0,12}", fullmatch=True)
entities = st.lists(st.builds(Entity, st.sampled_from(["ordinal", "language", "order_number"]),
                              st.text(max_size=12)), max_size=2)
parsed = st.builds(Parsed, st.sampled_from(INTENTS), st.floats(0, 1),
                   entities.map(tuple), st.sampled_from(["de", "en", "tr", "ru", "ar", "xx"]))
inputs = st.one_of(st.builds(TextMessage, texts, parsed), st.builds(ButtonPress, payloads))


@pytest.fixture
def two_customers(services: Services) -> tuple[int, list[str]]:
    with transaction(services.sessions) as session:
        make_technician(session)
        for day in range(1, 4):
            make_slots(session, day=(NOW + timedelta(days=day)).date())
        mine = make_order(session, number="40000001", technician_id="T-1")
        other = make_order(session, number="40000002", street="Geheimweg 99",
                           name="Otto Anders", postal_code="10119",
                           window=(NOW + timedelta(days=5, hours=3),
                                   NOW + timedelta(days=5, hours=5)))
        chat = ensure_chat(session, chat_key="tg:1", telegram_chat_id=1, now=NOW)
        link_chat(session, chat=chat, order=mine)
        other_window = texts_factory("Europe/Berlin")("de").window(other.window_start,
                                                                   other.window_end)
        return mine.id, ["40000002", "Geheimweg", "Otto", other_window]


@pytest.mark.slow
def test_any_input_is_answered_and_never_with_another_customers_data(
    services: Services, two_customers: tuple[int, list[str]]
) -> None:
    order_id, secrets = two_customers

    @given(steps=st.lists(inputs, min_size=1, max_size=6))
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    def conversation(steps: list[TextMessage | ButtonPress]) -> None:
        with transaction(services.sessions) as session:  # each example starts with the bot
            session.execute(update(Handoff).values(status="closed"))
        for incoming in steps:
            replies = run_turn(services, chat_key="tg:1", order_id=order_id,
                               incoming=incoming, fallback_language="de")
            with transaction(services.sessions) as session:
                # While a person holds the chat, the bot may stay quiet: the person reads it.
                quiet_ok = open_handoff_of_chat(session, chat_key="tg:1") is not None
            assert (replies or quiet_ok) and all(r.text.strip() for r in replies)
            for reply in replies:
                shown = reply.text + " ".join(b.title for b in reply.flat_buttons)
                assert not any(secret in shown for secret in secrets), shown
                assert all(len(b.payload.encode()) <= 64 for b in reply.flat_buttons)

    conversation()
