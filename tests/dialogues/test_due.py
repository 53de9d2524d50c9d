"""Which pushes are due: quiet hours, opt-out, missed visits, moves, delays."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dialogues.due import (
    Change,
    Decision,
    OrderFacts,
    PushRules,
    SentPush,
    decide_order,
    delay_probability,
    due_pushes,
)
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
                      window_end=START + timedelta(hours=2, minutes=50), late=0.95)
    facts = replace(FACTS, status="en_route")
    (push,) = [p for p in due_pushes(facts, late, now) if p.kind == "delayed"]
    told = replace(facts, sent=(SentPush("delayed", push.dedupe_key, push.payload, now),))
    later = replace(late, eta=late.eta + timedelta(minutes=40))
    assert "delayed" not in kinds(told, now + timedelta(minutes=10), later)
    assert "delayed" in kinds(told, now + timedelta(minutes=31), later)


def test_a_delay_is_told_again_only_when_the_arrival_leaves_the_window_told() -> None:
    now = START + timedelta(minutes=30)
    late = Prediction(eta=START + timedelta(hours=2, minutes=30),
                      window_start=START + timedelta(hours=2),
                      window_end=START + timedelta(hours=3, minutes=10), late=0.95)
    facts = replace(FACTS, status="en_route")
    (push,) = [p for p in due_pushes(facts, late, now) if p.kind == "delayed"]
    told = replace(facts, sent=(SentPush("delayed", push.dedupe_key, push.payload, now),))
    inside = replace(late, eta=late.eta + timedelta(minutes=30))  # 25 min later, still inside
    outside = replace(late, eta=late.eta + timedelta(minutes=45))  # after the window told
    assert "delayed" not in kinds(told, now + timedelta(hours=1), inside)
    assert "delayed" in kinds(told, now + timedelta(hours=1), outside)


def test_the_rating_request_follows_completion_once() -> None:
    done = replace(FACTS, status="completed", finished_at=START + timedelta(hours=1))
    assert kinds(done, START + timedelta(hours=1)) == {"rating_request"}


def decision(facts: OrderFacts, now: datetime, prediction: Prediction | None = None
             ) -> Decision:
    return decide_order(facts, prediction, now, PushRules())


def test_each_decision_says_when_the_order_is_decided_again() -> None:
    days_before = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert decision(FACTS, days_before).next_at == days_before + timedelta(hours=1)
    evening = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)
    assert decision(FACTS, evening).next_at == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    # On its day, with a prediction: sooner the nearer the arrival.
    soon = Prediction(eta=START + timedelta(minutes=30), window_start=START,
                      window_end=START + timedelta(hours=1))
    (at_once,) = [decision(FACTS, START, soon).next_at]
    assert at_once is not None and START < at_once <= START + timedelta(minutes=3)
    done = replace(FACTS, status="completed", finished_at=START)
    assert decision(done, START + timedelta(hours=1)).next_at is None
    # A rating held by the night is decided again when the night ends.
    night = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)
    assert decision(done, night).next_at == datetime(2026, 11, 25, 7, 0, tzinfo=UTC)


def test_a_delay_must_be_likelier_the_further_off_the_windows_end() -> None:
    rules = PushRules()
    assert delay_probability(rules, timedelta(minutes=5)) == 0.5
    assert delay_probability(rules, timedelta(minutes=40)) == pytest.approx(0.7)
    assert delay_probability(rules, timedelta(hours=6)) == 0.9
    now = START - timedelta(hours=2)  # 08:00, four hours before the window ends
    facts = replace(FACTS, status="en_route")

    def told(late: float) -> set[str]:
        end = START + timedelta(hours=2)
        prediction = Prediction(eta=end + timedelta(minutes=20), window_start=end,
                                window_end=end + timedelta(minutes=50), late=late)
        return kinds(facts, now, prediction)

    assert "delayed" not in told(0.85)  # four hours to go: not sure enough yet
    assert "delayed" in told(0.95)


def test_a_delay_waits_for_the_morning_unless_the_visit_is_early() -> None:
    night = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # 00:30 on the visit's day in Berlin
    late = Prediction(eta=START + timedelta(hours=3), window_start=START + timedelta(hours=2),
                      window_end=START + timedelta(hours=4), late=0.95)
    assert "delayed" not in kinds(FACTS, night, late)  # a 10:00 visit: told after the night
    early = replace(FACTS, window_start=START - timedelta(hours=1, minutes=30),
                    window_end=START + timedelta(hours=1))
    assert "delayed" in kinds(early, night, late)  # an 08:30 visit cannot wait


def test_a_narrowed_window_that_no_longer_holds_is_told_again_within_the_booked_one() -> None:
    now = START - timedelta(hours=1)  # 09:00, the booked window 10:00-12:00

    def at(start: int, end: int, eta: int, late: float = 0.0) -> Prediction:
        return Prediction(eta=START + timedelta(minutes=eta),
                          window_start=START + timedelta(minutes=start),
                          window_end=START + timedelta(minutes=end), late=late)

    evening = now - timedelta(hours=15)
    (reminder,) = due_pushes(FACTS, None, evening)
    reminded = replace(FACTS, sent=(SentPush(reminder.kind, reminder.dedupe_key,
                                             reminder.payload, evening),))
    (first,) = due_pushes(reminded, at(0, 40, 20), now)
    assert first.kind == "window_narrowed" and "update" not in first.payload
    told = replace(reminded, sent=(*reminded.sent,
                                   SentPush(first.kind, first.dedupe_key, first.payload, now)))
    assert kinds(told, now + timedelta(minutes=40), at(5, 45, 25)) == set()  # it still holds
    # The job before ran long: the arrival is expected after the window told, within the booked.
    assert kinds(told, now + timedelta(minutes=10), at(50, 95, 70)) == set()  # too soon again
    (update,) = due_pushes(told, at(50, 95, 70), now + timedelta(minutes=40))
    assert update.kind == "window_narrowed" and update.payload["update"] is True
    assert update.dedupe_key.endswith(":2")
    # Past the booked window it is a delay, not an update.
    assert kinds(told, now + timedelta(minutes=40), at(100, 150, 130, late=0.95)) == {"delayed"}
