"""The service team's business hours: parsed from one line, asked when open and when back."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = r"([01]?\d|2[0-4]):([0-5]\d)"
_RANGE = re.compile(rf"^{_TIME}\s*-\s*{_TIME}$")
_CLAUSE = re.compile(r"^([a-z]{3}(?:\s*-\s*[a-z]{3})?(?:\s*,\s*[a-z]{3}(?:\s*-\s*[a-z]{3})?)*)"
                     r"\s+(.+)$")
LOOKAHEAD_DAYS = 8  # a week and a day: every weekday is seen at least once


@dataclass(frozen=True)
class BusinessHours:
    """Opening intervals per weekday (0 = Monday), in minutes of the local day."""

    intervals: tuple[tuple[tuple[int, int], ...], ...]  # seven days
    zone: str
    text: str

    @classmethod
    def parse(cls, text: str, zone: str) -> BusinessHours:
        """Read `mon-fri 08:00-18:00; sat 09:00-13:00`; raise ValueError saying what is wrong."""
        week: list[list[tuple[int, int]]] = [[] for _ in DAYS]
        clauses = [c.strip() for c in text.lower().split(";") if c.strip()]
        if not clauses:
            raise ValueError("no opening hours given, e.g. 'mon-fri 08:00-18:00'")
        for clause in clauses:
            match = _CLAUSE.match(clause)
            if match is None:
                raise ValueError(f"{clause!r} is not 'days hh:mm-hh:mm', e.g. 'sat 09:00-13:00'")
            days = _days(match.group(1))
            for span in match.group(2).split(","):
                start, end = _span(span.strip())
                for day in days:
                    week[day].append((start, end))
        for day, spans in enumerate(week):
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError(f"overlapping hours on {DAYS[day]}")
        ZoneInfo(zone)  # an unknown zone fails here, not at the first customer
        return cls(tuple(tuple(s) for s in week), zone, text.strip())

    @property
    def always(self) -> bool:
        """Say whether the team is there around the clock."""
        return all(spans == ((0, 24 * 60),) for spans in self.intervals)

    def _open_spans(self, after: datetime) -> list[tuple[datetime, datetime]]:
        """Return the opening intervals from the day of `after` on, as aware datetimes."""
        zone = ZoneInfo(self.zone)
        first = after.astimezone(zone).date()
        spans: list[tuple[datetime, datetime]] = []
        for offset in range(LOOKAHEAD_DAYS):
            day = first + timedelta(days=offset)
            for start, end in self.intervals[day.weekday()]:
                begin, finish = _at(day, start, zone), _at(day, end, zone)
                if spans and spans[-1][1] == begin:  # 24:00 joins the next day's 00:00
                    spans[-1] = (spans[-1][0], finish)
                else:
                    spans.append((begin, finish))
        return [(s, e) for s, e in spans if e > after]

    def is_open(self, at: datetime) -> bool:
        """Say whether the team is at work at this moment."""
        return any(s <= at < e for s, e in self._open_spans(at))

    def next_open(self, at: datetime) -> datetime | None:
        """Return when the team is next at work (`at` itself if now); None if never."""
        for start, _ in self._open_spans(at):
            return max(start, at)
        return None

    def deadline(self, at: datetime, working: timedelta) -> datetime | None:
        """Return the moment `working` time of opening hours has passed since `at`."""
        left = working
        for start, end in self._open_spans(at):
            start = max(start, at)
            if end - start >= left:
                return start + left
            left -= end - start
        return None


def _days(spec: str) -> list[int]:
    days: list[int] = []
    for part in spec.split(","):
        first, _, last = (p.strip() for p in part.partition("-"))
        last = last or first
        for name in (first, last):
            if name not in DAYS:
                raise ValueError(f"unknown day {name!r}; use {', '.join(DAYS)}")
        a, b = DAYS.index(first), DAYS.index(last)
        days += list(range(a, b + 1)) if a <= b else [*range(a, 7), *range(0, b + 1)]
    return days


def _span(text: str) -> tuple[int, int]:
    match = _RANGE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time range such as 08:00-18:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start >= end or end > 24 * 60:
        raise ValueError(f"{text!r} must end after it starts, at 24:00 the latest")
    return start, end


def _at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    if minute >= 24 * 60:
        return datetime.combine(day + timedelta(days=1), time(0), zone)
    return datetime.combine(day, time(minute // 60, minute % 60), zone)
