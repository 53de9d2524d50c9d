"""The service team's business hours: parsed from one line, open or closed, back when."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dialogues.hours import BusinessHours

BERLIN = "Europe/Berlin"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


WEEK = BusinessHours.parse("mon-fri 08:00-18:00; sat 09:00-13:00", BERLIN)


@pytest.mark.parametrize(("moment", "is_open"), [
    ("2026-11-23T08:00:00+01:00", True),   # Monday, opening minute
    ("2026-11-23T07:59:00+01:00", False),
    ("2026-11-23T18:00:00+01:00", False),  # closing minute belongs to the evening
    ("2026-11-28T12:59:00+01:00", True),   # Saturday morning
    ("2026-11-29T10:00:00+01:00", False),  # Sunday
    ("2026-11-23T07:30:00+00:00", True),   # 08:30 in Berlin, asked in UTC
])
def test_open_or_closed(moment: str, is_open: bool) -> None:
    assert WEEK.is_open(at(moment)) is is_open


def test_back_at_the_next_opening() -> None:
    assert WEEK.next_open(at("2026-11-28T15:00:00+01:00")) == at("2026-11-30T08:00:00+01:00")
    assert WEEK.next_open(at("2026-11-27T19:00:00+01:00")) == at("2026-11-28T09:00:00+01:00")
    now = at("2026-11-23T10:00:00+01:00")
    assert WEEK.next_open(now) == now


def test_a_deadline_counts_only_opening_hours() -> None:
    fifteen = timedelta(minutes=15)
    assert WEEK.deadline(at("2026-11-23T10:00:00+01:00"), fifteen) == at(
        "2026-11-23T10:15:00+01:00")
    # Ten minutes before Saturday's closing: five minutes are left for Monday morning.
    assert WEEK.deadline(at("2026-11-28T12:50:00+01:00"), fifteen) == at(
        "2026-11-30T08:05:00+01:00")
    assert WEEK.deadline(at("2026-11-29T03:00:00+01:00"), fifteen) == at(
        "2026-11-30T08:15:00+01:00")


def test_around_the_clock_joins_the_days() -> None:
    always = BusinessHours.parse("mon-sun 00:00-24:00", BERLIN)
    assert always.always and always.is_open(at("2026-11-29T03:00:00+01:00"))
    late = at("2026-11-29T23:55:00+01:00")
    assert always.deadline(late, timedelta(minutes=15)) == late + timedelta(minutes=15)


def test_days_lists_wrapping_ranges_and_split_days() -> None:
    hours = BusinessHours.parse("fri-mon 10:00-12:00, 14:00-16:00", BERLIN)
    assert hours.is_open(at("2026-11-29T15:00:00+01:00"))  # Sunday afternoon
    assert not hours.is_open(at("2026-11-29T13:00:00+01:00"))
    assert not hours.is_open(at("2026-11-25T11:00:00+01:00"))  # Wednesday


def test_summer_time_moves_with_the_zone() -> None:
    assert WEEK.is_open(at("2026-07-06T06:30:00+00:00"))  # 08:30 summer time in Berlin
    assert not WEEK.is_open(at("2026-07-06T05:30:00+00:00"))


@pytest.mark.parametrize(("line", "says"), [
    ("", "no opening hours"),
    ("weekdays 08:00-18:00", "not 'days hh:mm-hh:mm'"),
    ("mon-fri 8-18", "not a time range"),
    ("mon-fri 18:00-08:00", "must end after it starts"),
    ("mon 08:00-12:00, 11:00-13:00", "overlapping"),
    ("mon-fry 08:00-18:00", "unknown day 'fry'"),
])
def test_a_bad_line_says_what_is_wrong(line: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        BusinessHours.parse(line, BERLIN)
