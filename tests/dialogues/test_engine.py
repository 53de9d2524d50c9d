"""The dialogue engine, with plain values and a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from dialogues.engine import INTENTS
from dialogues.model import (
    BookSlot,
    CancelVisit,
    CommandFailed,
    Conversation,
    JoinWaitlist,
    LeaveWaitlist,
    OpenHandoff,
    PassWaitlistOffer,
    Prediction,
    SaveNote,
    SaveRating,
    SetLanguage,
    SetNotifications,
    State,
    TakeWaitlistOffer,
)
from nlu.types import NOT_UNDERSTOOD, Entity
from tests.conftest import NOW
from tests.dialogues.factories import TOMORROW_9, make_view, run, said, tap

FRESH = Conversation(language="en")


def test_status_tells_window_technician_and_route_place() -> None:
    view = make_view(prediction=Prediction(eta=TOMORROW_9 + timedelta(minutes=70),
                                           window_start=TOMORROW_9 + timedelta(minutes=50),
                                           window_end=TOMORROW_9 + timedelta(minutes=90),
                                           stop=3, stops=5))
    reply = run(FRESH, said("ask_status"), view, now=TOMORROW_9 - timedelta(hours=1)).replies[0]
    assert "Tuesday, November 24, 2026, 9:00\u202fAM–11:00\u202fAM" in reply.text
    assert "Jonas" in reply.text and "Becker" not in reply.text
    assert "stop 3 of 5" in reply.text and "9:50\u202fAM–10:30\u202fAM" in reply.text
    assert reply.buttons  # never a dead end


@pytest.mark.parametrize(("status", "expected"), [
    ("completed", "completed"), ("cancelled", "cancelled"), ("no_show", "did not come"),
    ("en_route", "on the way"), ("arrived", "has arrived"),
])
def test_status_says_each_state_plainly(status: str, expected: str) -> None:
    view = make_view(status=status, status_reason="Techniker erkrankt",
                     finished_at=TOMORROW_9)
    assert expected in run(FRESH, said("ask_status"), view).replies[0].text


def test_an_unscheduled_order_says_so() -> None:
    view = make_view(status="unscheduled", window_start=None, window_end=None)
    assert "not scheduled yet" in run(FRESH, said("ask_status"), view).replies[0].text


def test_reschedule_offers_numbered_slots_as_text_and_buttons() -> None:
    result = run(FRESH, said("reschedule", "verschieben"))
    reply = result.replies[0]
    assert result.conversation.state == State.CHOOSING_SLOT
    assert reply.text.count("\n") == 4  # intro + four windows
    assert [b.payload for b in reply.flat_buttons] == ["s:1:1", "s:1:2", "s:1:3", "s:1:4",
                                                      "m:later", "w:join"]
    # The booked window (slot 100) and windows inside the cut-off are never offered.
    assert "9:00" not in reply.text.splitlines()[1]


def test_pick_by_number_confirm_and_book() -> None:
    offered = run(FRESH, said("reschedule")).conversation
    chosen = run(offered, said("choose_slot", "2"))
    assert chosen.conversation.state == State.CONFIRMING_SLOT
    assert "Shall I move" in chosen.replies[0].text
    booked = run(chosen.conversation, said("affirm", "ja"))
    assert booked.commands == (BookSlot(102),)
    assert booked.conversation.state == State.IDLE
    assert "Done" in booked.replies[0].text


@pytest.mark.parametrize(("language", "text", "entity"), [
    ("de", "die zweite", None), ("en", "the second one", "2"), ("tr", "ikincisi", None),
    ("ru", "второй", None), ("ar", "الثاني", None),
])
def test_pick_by_ordinal_in_every_language(language: str, text: str, entity: str | None) -> None:
    offered = run(FRESH, said("reschedule")).conversation
    extra = {"ordinal": entity} if entity else {}
    chosen = run(offered, said("choose_slot", text, language=language, entities=extra))
    assert chosen.conversation.data["chosen"][0] == 102


@pytest.mark.parametrize(("language", "text", "slot_id"), [
    ("de", "Donnerstag nachmittag", 110),  # Thursday 26th: 13:00 and 15:00 -> offer of two
    ("en", "thursday after 3", 111),
    ("tr", "yarın öğleden sonra", None),
    ("ru", "в пятницу утром", None),
    ("ar", "الخميس بعد الظهر", None),
])
def test_pick_by_words_in_every_language(language: str, text: str, slot_id: int | None) -> None:
    result = run(FRESH, said("reschedule", text, language=language))
    if slot_id is not None and result.conversation.state == State.CONFIRMING_SLOT:
        assert result.conversation.data["chosen"][0] == slot_id
    else:
        assert result.conversation.state == State.CHOOSING_SLOT
        assert "fit your wish" in result.replies[0].text


def test_a_date_in_the_reschedule_message_jumps_to_that_day() -> None:
    result = run(FRESH, said("reschedule", "kann der termin auf freitag?", language="de"))
    lines = result.replies[0].text.splitlines()[1:]
    assert lines and all("Freitag" in line for line in lines)


def test_none_of_these_shows_later_slots() -> None:
    offered = run(FRESH, said("reschedule"))
    later = run(offered.conversation, tap("m:later"))
    assert later.conversation.state == State.CHOOSING_SLOT
    first_before = offered.replies[0].text.splitlines()[-1]
    assert first_before not in later.replies[0].text
    assert run(offered.conversation, said("deny", "keiner davon")).replies[0].text.startswith(
        "Later")


def test_buttons_of_another_offer_or_forged_ones_change_nothing() -> None:
    offered = run(FRESH, said("reschedule")).conversation
    for payload in ("s:99:1", "s:1:9", "s:1:x", "y:7", "zz", "s:", "m:nothing"):
        result = run(offered, tap(payload))
        assert result.commands == ()
        assert "expired" in result.replies[0].text
    assert run(offered, tap("s:1:1")).conversation.state == State.CONFIRMING_SLOT


def test_an_offer_older_than_its_validity_has_expired() -> None:
    offered = run(FRESH, said("reschedule")).conversation
    late = run(offered, tap("s:1:1"), now=NOW + timedelta(minutes=31))
    assert "expired" in late.replies[0].text


def test_a_confirm_button_from_an_old_question_is_refused() -> None:
    offered = run(FRESH, said("reschedule")).conversation
    asked = run(offered, tap("s:1:1")).conversation
    assert run(asked, tap("y:0")).commands == ()
    assert run(asked, tap(f"y:{asked.data['confirm_seq']}")).commands == (BookSlot(101),)


def test_slot_taken_between_offer_and_confirm_is_answered_truthfully() -> None:
    offered = run(FRESH, said("reschedule")).conversation
    asked = run(offered, said("choose_slot", "1")).conversation
    booked = run(asked, said("affirm"))
    taken = set(s.id for s in make_view().free_slots[:2])
    view = make_view(free_slots=tuple(s for s in make_view().free_slots if s.id not in taken))
    answer = run(asked, CommandFailed(booked.commands[0], "slot_taken"), view)
    assert "someone else has just booked" in answer.replies[0].text
    assert answer.conversation.state == State.CHOOSING_SLOT
    assert answer.commands == ()


def test_no_free_slots_in_the_horizon_offers_the_waitlist_and_a_person() -> None:
    result = run(FRESH, said("reschedule"), make_view(free_slots=()))
    assert "no free window" in result.replies[0].text
    assert [b.payload for b in result.replies[0].flat_buttons] == ["w:join", "m:human"]


@pytest.mark.parametrize("view_change", [
    {"status": "en_route"},
    {"moves": 3},
    {"window_start": NOW + timedelta(hours=1), "window_end": NOW + timedelta(hours=3)},
])
def test_moving_is_refused_with_a_reason_and_a_person(view_change: dict[str, object]) -> None:
    result = run(FRESH, said("reschedule"), make_view(**view_change))
    assert result.conversation.state == State.IDLE
    assert "colleague" in result.replies[0].text
    assert result.replies[0].flat_buttons[0].payload == "m:human"


def test_a_wish_in_the_past_or_unparseable_gets_the_next_free_slots() -> None:
    past = run(FRESH, said("reschedule", "gestern vormittag", language="de"))
    nonsense = run(FRESH, said("reschedule", "irgendwann mal", language="de"))
    assert past.conversation.state == nonsense.conversation.state == State.CHOOSING_SLOT
    assert all(s[1] > NOW.isoformat() for s in past.conversation.data["offer"]["slots"])


def test_choose_slot_outside_an_offer_is_a_wish_to_move() -> None:
    result = run(FRESH, said("choose_slot", "Donnerstag nachmittag", language="de"))
    assert result.conversation.state in (State.CHOOSING_SLOT, State.CONFIRMING_SLOT)


def test_cancel_asks_first_then_cancels() -> None:
    asked = run(FRESH, said("cancel"))
    assert asked.conversation.state == State.CONFIRMING_CANCEL and asked.commands == ()
    done = run(asked.conversation, said("affirm"))
    assert isinstance(done.commands[0], CancelVisit)
    kept = run(asked.conversation, said("deny"))
    assert kept.commands == () and "stays" in kept.replies[0].text


def test_notes_are_saved_and_repeated_or_asked_for() -> None:
    note = "bitte beim nachbarn klingeln 3 stock"
    saved = run(FRESH, said("leave_note", note))
    assert saved.commands == (SaveNote(note),) and note in saved.replies[0].text
    asked = run(FRESH, said("leave_note", "notiz hinterlassen"))
    assert asked.conversation.state == State.AWAITING_NOTE and asked.commands == ()
    later = run(asked.conversation, said("out_of_scope", "der hund ist lieb"))
    assert later.commands == (SaveNote("der hund ist lieb"),)


def test_verify_technician_gives_name_and_code_word() -> None:
    reply = run(FRESH, said("verify_technician")).replies[0]
    assert "Jonas Becker" in reply.text and "Kranich" in reply.text and "cash" in reply.text


def test_compensation_explains_the_law_and_opens_a_claim_when_missed() -> None:
    plain = run(FRESH, said("ask_compensation"))
    assert "58" in plain.replies[0].text and plain.commands == ()
    missed = run(FRESH, said("ask_compensation"), make_view(status="no_show"))
    assert missed.commands[0] == OpenHandoff("compensation")
    assert "€10.00" in missed.replies[0].text  # 20 % of 49.95 is less than 10 euros
    passed = run(FRESH, said("ask_compensation"), make_view(
        window_start=NOW - timedelta(hours=4), window_end=NOW - timedelta(hours=2)))
    assert passed.commands == (OpenHandoff("compensation"),)


def test_handoff_keeps_the_last_messages_with_times_and_intents() -> None:
    talked = run(FRESH, said("ask_status", "wann kommt er")).conversation
    result = run(talked, said("human_handoff", "ich will einen menschen"))
    assert result.commands == (OpenHandoff("customer_asked"),)
    recent = result.conversation.data["recent"]
    assert recent[0][:2] == ["customer", "wann kommt er"] and recent[0][3] == "ask_status"
    assert recent[-2][:2] == ["customer", "ich will einen menschen"]
    assert recent[-1][0] == "bot" and "colleague" in recent[-1][1]
    assert result.replies[0].flat_buttons[-1].payload == "h:back"


def test_three_misses_in_a_row_bring_a_person_and_one_hit_resets_the_count() -> None:
    first = run(FRESH, said(NOT_UNDERSTOOD, "blub"))
    second = run(first.conversation, said(NOT_UNDERSTOOD, "blab"))
    assert second.commands == ()
    reset = run(second.conversation, said("greet", "hallo"))
    again = run(run(reset.conversation, said(NOT_UNDERSTOOD, "x")).conversation,
                said(NOT_UNDERSTOOD, "y"))
    assert again.commands == ()
    third = run(again.conversation, said(NOT_UNDERSTOOD, "z"))
    assert third.commands == (OpenHandoff("not_understood"),)
    assert "misunderstanding" in third.replies[0].text


def test_a_person_after_a_delay_or_a_poor_rating_says_why() -> None:
    delayed = replace(FRESH, data={"delay_told_at": (NOW - timedelta(minutes=10)).isoformat()})
    assert run(delayed, said("human_handoff")).commands == (OpenHandoff("delay_rejected"),)
    stale = replace(FRESH, data={"delay_told_at": (NOW - timedelta(hours=5)).isoformat()})
    assert run(stale, said("human_handoff")).commands == (OpenHandoff("customer_asked"),)
    poor = run(FRESH, said("give_feedback", "1 stern, er war unfreundlich"),
               make_view(status="completed"))
    assert poor.replies[0].flat_buttons[0].payload == "m:human"
    assert run(poor.conversation, said("human_handoff")).commands == (
        OpenHandoff("complaint"),)


def test_a_no_right_after_a_delay_offers_to_move_the_visit() -> None:
    delayed = replace(FRESH, data={"delay_told_at": (NOW - timedelta(minutes=10)).isoformat()})
    result = run(delayed, said("deny", "nein das passt mir nicht"))
    assert result.conversation.state == State.CHOOSING_SLOT


def test_feedback_stores_stars_and_text() -> None:
    result = run(FRESH, said("give_feedback", "5 sterne sehr nett"))
    assert result.commands == (SaveRating(5, "5 sterne sehr nett"),)
    assert run(FRESH, tap("r:4"), make_view(status="completed")).commands == (SaveRating(4, None),)
    assert run(FRESH, said("number", "3"), make_view(status="completed")).commands == (
        SaveRating(3, None),)


def test_language_switch_by_name_and_by_button() -> None:
    named = run(FRESH, said("change_language", "another language please"))
    assert named.conversation.state == State.CHOOSING_LANGUAGE  # no entity: show the choice
    chosen = run(named.conversation, tap("l:tr"))
    assert chosen.conversation.language == "tr" and SetLanguage("tr") in chosen.commands
    direct = run(FRESH, said("change_language", "in german please",
                             entities={"language": "de"}))
    assert direct.conversation.language == "de"


def test_stop_notifications_and_turn_them_on_again() -> None:
    stopped = run(FRESH, said("stop_notifications"))
    assert stopped.commands == (SetNotifications(False),)
    assert "/start" in stopped.replies[0].text
    assert run(FRESH, tap("m:notify_on")).commands == (SetNotifications(True),)


@pytest.mark.parametrize("intent", sorted(INTENTS))
def test_every_intent_gets_an_answer(intent: str) -> None:
    result = run(FRESH, said(intent, "hallo"))
    assert result.replies and all(r.text for r in result.replies)


def test_nlu_down_gets_buttons_and_keeps_the_state() -> None:
    offered = run(FRESH, said("reschedule")).conversation
    down = said("nlu_fallback", "egal")
    down = replace(down, parsed=replace(down.parsed, available=False))
    result = run(offered, down)
    assert "buttons" in result.replies[0].text and result.replies[0].buttons
    assert result.conversation.state == State.CHOOSING_SLOT


def test_a_conversation_idle_for_hours_starts_fresh() -> None:
    offered = run(FRESH, said("reschedule")).conversation
    later = run(offered, said("number", "2"), now=NOW + timedelta(hours=7))
    assert later.conversation.state == State.IDLE and later.commands == ()


def test_the_language_of_the_message_wins_and_is_stored() -> None:
    result = run(Conversation(language="de"), said("greet", "merhaba", language="tr"))
    assert result.conversation.language == "tr"
    assert SetLanguage("tr") in result.commands


def test_earlier_offers_only_windows_before_the_booked_one_or_waits() -> None:
    earlier = said("reschedule", "anything earlier, in the morning?")
    earlier = replace(earlier, parsed=replace(earlier.parsed, entities=(
        Entity("timing", "earlier"),)))
    view = make_view(window_start=TOMORROW_9 + timedelta(days=2),
                     window_end=TOMORROW_9 + timedelta(days=2, hours=2))
    offered = run(FRESH, earlier, view)
    starts = [s[1] for s in offered.conversation.data["offer"]["slots"]]
    assert starts and all(start < view.window_start.isoformat() for start in starts)
    waiting = run(FRESH, earlier, make_view())  # booked tomorrow 9:00: nothing earlier fits
    joined = waiting.commands[0]
    assert isinstance(joined, JoinWaitlist) and joined.part == "morning"
    assert waiting.replies[0].flat_buttons[0].payload == "w:leave"


def test_a_held_window_is_taken_or_passed_only_from_its_own_offer() -> None:
    held = replace(FRESH, data={"waitlist_offer": {"id": 7, "start": TOMORROW_9.isoformat(),
                                                   "end": (TOMORROW_9 + timedelta(hours=2))
                                                   .isoformat()}})
    assert run(held, tap("w:take:7")).commands == (TakeWaitlistOffer(7),)
    assert run(held, tap("w:pass:7")).commands == (PassWaitlistOffer(7),)
    assert run(held, tap("w:take:8")).commands == ()  # a forged or old offer
    assert run(FRESH, tap("w:take:7")).commands == ()
    assert run(FRESH, tap("w:leave")).commands == (LeaveWaitlist(),)
