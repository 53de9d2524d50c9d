"""Which pushes are due: quiet hours, opt-out, missed visits, moves, delays."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dialogues.due import Change, OrderFacts, SentPush, due_pushes
from dialogues.model import Prediction

# Tuesday 24 Nov 2026, visit 10:00-12:00 Berlin (09:00-11:00 UTC).
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
FACTS = OrderFacts(order_id=1, status="scheduled", timezone="Europe/Berlin",
                   window_start=START, window_end=START + timedelta(hours=2),
                   changes=(Change(1, "operator", START, START + timedelta(hours=2),
                                   START - timedelta(days=3)),))


def kinds(facts: OrderFacts, now: datetime, prediction: Prediction | None = None) -> set[str]:
    return {p.kind for p in due_pushes(facts, prediction, now)}


def test_the_reminder_waits_for_the_evening_before_and_not_through_the_night() -> None:
    assert kinds(FACTS, datetime(2026, 11, 23, 16, 59, tzinfo=UTC)) == set()
    assert kinds(FACTS, datetime(2026, 11, 23, 17, 0, tzinfo=UTC)) == {"reminder"}
    assert kinds(FACTS, datetime(2026, 11, 23, 22, 0, tzinfo=UTC)) == set()  # 23:00: quiet
    assert kinds(FACTS, datetime(2026, 11, 24, 7, 0, tzinfo=UTC)) == {"reminder"}  # 08:00


def test_a_push_already_decided_is_not_decided_again() -> None:
    evening = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    (push,) = due_pushes(FACTS, None, evening)
    sent = replace(FACTS, sent=(SentPush(push.kind, push.dedupe_key, push.payload, evening),))
    assert kinds(sent, evening + timedelta(minutes=5)) == set()


def test_opting_out_holds_back_everything_but_a_cancellation() -> None:
    quiet = replace(FACTS, notifications_enabled=False)
    assert kinds(quiet, datetime(2026, 11, 23, 17, 0, tzinfo=UTC)) == set()
    cancelled = replace(quiet, status="cancelled", window_start=None, window_end=None,
                        changes=(*FACTS.changes, Change(2, "operator", None, None, START)))
    assert kinds(cancelled, START - timedelta(hours=2)) == {"cancelled_by_operator"}


def test_a_cancellation_and_a_delay_go_out_even_at_night() -> None:
    night = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    cancelled = replace(FACTS, status="cancelled",
                        changes=(*FACTS.changes, Change(2, "operator", None, None, night)))
    assert kinds(cancelled, night) == {"cancelled_by_operator"}


def test_a_window_that_passed_without_a_technician_is_a_missed_visit() -> None:
    after = START + timedelta(hours=2, minutes=16)
    assert "missed_visit" in kinds(FACTS, after)
    assert kinds(replace(FACTS, arrived_at=START), after) == set()


def test_operator_moves_are_pushed_and_the_customers_own_are_not() -> None:
    later = START + timedelta(days=1)
    moved = replace(FACTS, window_start=later, window_end=later + timedelta(hours=2),
                    changes=(*FACTS.changes, Change(2, "operator", later,
                                                    later + timedelta(hours=2), START)))
    assert "rescheduled" in kinds(moved, START - timedelta(hours=1))
    by_customer = replace(moved, changes=(*FACTS.changes, Change(
        2, "customer", later, later + timedelta(hours=2), START)))
    assert "rescheduled" not in kinds(by_customer, START - timedelta(hours=1))


def test_delays_are_not_repeated_within_the_interval() -> None:
    now = START + timedelta(minutes=30)
    late = Prediction(eta=START + timedelta(hours=2, minutes=30),
                      window_start=START + timedelta(hours=2, minutes=10),
                      window_end=START + timedelta(hours=2, minutes=50), late=0.9)
    facts = replace(FACTS, status="en_route")
    (push,) = [p for p in due_pushes(facts, late, now) if p.kind == "delayed"]
    told = replace(facts, sent=(SentPush("delayed", push.dedupe_key, push.payload, now),))
    later = replace(late, eta=late.eta + timedelta(minutes=40))
    assert "delayed" not in kinds(told, now + timedelta(minutes=10), later)
    assert "delayed" in kinds(told, now + timedelta(minutes=31), later)


def test_the_rating_request_follows_completion_once() -> None:
    done = replace(FACTS, status="completed", finished_at=START + timedelta(hours=1))
    assert kinds(done, START + timedelta(hours=1)) == {"rating_request"}
