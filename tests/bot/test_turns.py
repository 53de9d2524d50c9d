"""Whole conversations through the engine with real storage, in every language."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.services import Services
from bot.turns import run_turn
from dialogues.model import ButtonPress, Reply, TextMessage
from nlu.types import Entity, Parsed
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.models import CapacitySlot, Handoff, HandoffMessage, Note, Order, Rating
from tests.conftest import NOW
from tests.factories import make_order, make_slots, make_technician

# Wishes that name Thursday afternoon (26 Nov 2026) in each language.
THURSDAY_AFTERNOON = {
    "de": "kann der termin auf donnerstag nachmittag",
    "en": "can we move it to thursday afternoon",
    "tr": "perşembe öğleden sonraya alabilir miyiz",
    "ru": "можно перенести на четверг после обеда",
    "ar": "ممكن نأجل الموعد ليوم الخميس بعد الظهر",
}
THURSDAY = {"de": "Donnerstag", "en": "Thursday", "tr": "Perşembe", "ru": "четверг",
            "ar": "الخميس"}


def say(intent: str, text: str, language: str, **entities: str) -> TextMessage:
    return TextMessage(text, Parsed(intent, 0.9, tuple(Entity(k, v) for k, v in
                                                       entities.items()), language))


@pytest.fixture
def linked_order(sessions: sessionmaker[Session]) -> tuple[int, str]:
    with transaction(sessions) as session:
        make_technician(session)
        for day in range(1, 5):
            make_slots(session, day=(NOW + timedelta(days=day)).date(), capacity=1)
        first = session.query(CapacitySlot).order_by(CapacitySlot.start).first()
        order = make_order(session, window=(first.start, first.end), technician_id="T-1")
        chat = ensure_chat(session, chat_key="tg:1", telegram_chat_id=1, now=NOW)
        link_chat(session, chat=chat, order=order)
        return order.id, "tg:1"


def turn(services: Services, linked: tuple[int, str], incoming: TextMessage | ButtonPress,
         language: str = "de") -> Reply:
    replies = run_turn(services, chat_key=linked[1], order_id=linked[0], incoming=incoming,
                       fallback_language=language)
    assert replies
    return replies[-1]


@pytest.mark.parametrize("language", ["de", "en", "tr", "ru", "ar"])
def test_status_move_by_words_confirm_and_status_again(
    services: Services, linked_order: tuple[int, str], language: str
) -> None:
    status = turn(services, linked_order, say("ask_status", "?", language), language)
    assert "Jonas" in status.text
    offer = turn(services, linked_order,
                 say("reschedule", THURSDAY_AFTERNOON[language], language), language)
    # Thursday has two afternoon windows (13 and 15 o'clock UTC+1): both offered.
    assert offer.text.count(THURSDAY[language]) >= 2, offer.text
    confirm = turn(services, linked_order, say("choose_slot", "1", language), language)
    assert confirm.flat_buttons[0].payload.startswith("y:")
    turn(services, linked_order, ButtonPress(confirm.flat_buttons[0].payload), language)
    after = turn(services, linked_order, say("ask_status", "?", language), language)
    with transaction(services.sessions) as session:
        order = session.get(Order, linked_order[0])
        assert order.window_start is not None
        assert order.window_start.date() == (NOW + timedelta(days=3)).date()
        assert order.moves == 1
        assert session.get(CapacitySlot, order.slot_id).booked == 1
    assert THURSDAY[language] in after.text


def test_the_last_place_taken_between_offer_and_confirm(
    services: Services, linked_order: tuple[int, str]
) -> None:
    offer = turn(services, linked_order, say("reschedule", "verschieben", "de"))
    confirm = turn(services, linked_order, ButtonPress(offer.flat_buttons[0].payload))
    with transaction(services.sessions) as session:  # someone else takes the last place
        chosen = session.query(CapacitySlot).order_by(CapacitySlot.start).all()
        taken = next(s for s in chosen if s.booked == 0)
        taken.booked = taken.capacity
    answer = turn(services, linked_order, ButtonPress(confirm.flat_buttons[0].payload))
    assert "nicht verschoben" in answer.text  # says the visit was not moved, in German
    assert answer.flat_buttons[0].payload.startswith("s:")  # and offers what is still free
    with transaction(services.sessions) as session:
        assert session.get(Order, linked_order[0]).moves == 0


def test_cancel_note_rating_and_handoff_reach_storage(
    services: Services, linked_order: tuple[int, str]
) -> None:
    turn(services, linked_order, say("leave_note", "bitte im hinterhaus klingeln 2 og", "de"))
    turn(services, linked_order, say("human_handoff", "ich will einen menschen", "de"))
    turn(services, linked_order, ButtonPress("h:back"))  # the customer's own way back
    turn(services, linked_order, say("give_feedback", "5 sterne super", "de"))
    asked = turn(services, linked_order, say("cancel", "stornieren", "de"))
    turn(services, linked_order, ButtonPress(asked.flat_buttons[0].payload))
    with transaction(services.sessions) as session:
        order = session.get(Order, linked_order[0])
        assert order.status == "cancelled" and order.slot_id is None
        assert session.query(Note).one().text == "bitte im hinterhaus klingeln 2 og"
        handoff = session.query(Handoff).one()
        assert handoff.status == "closed" and handoff.closed_by == "customer"
        assert "ich will einen menschen" in [m.text for m in session.query(HandoffMessage)]
        assert session.query(Rating).one().stars == 5
        assert sum(s.booked for s in session.query(CapacitySlot)) == 0


def test_a_second_tap_on_the_same_offer_changes_nothing(
    services: Services, linked_order: tuple[int, str]
) -> None:
    offer = turn(services, linked_order, say("reschedule", "verschieben", "de"))
    confirm = turn(services, linked_order, ButtonPress(offer.flat_buttons[0].payload))
    yes = confirm.flat_buttons[0].payload
    turn(services, linked_order, ButtonPress(yes))
    again = turn(services, linked_order, ButtonPress(yes))
    assert again.flat_buttons  # the "expired" answer still offers the main actions
    with transaction(services.sessions) as session:
        assert session.get(Order, linked_order[0]).moves == 1
