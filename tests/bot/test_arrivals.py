"""The edge of the arrival model: the calibration judges each past forecast once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.arrivals import predictions
from bot.services import Services
from dialogues.prediction import calibrate
from storage.db import transaction
from storage.history import add_forecasts, resolved_forecasts
from tests.conftest import NOW
from tests.factories import make_order

MINUTE = timedelta(minutes=1)


def _visits_arrive(services: Services, *, first: int, count: int, late: int) -> None:
    """Add visits with three forecasts each (made 3 h, 1 h, 20 min ahead), then arrivals."""
    with transaction(services.sessions) as session:
        for k in range(first, first + count):
            arrival = NOW + k * 10 * MINUTE
            order = make_order(session, number=f"6{k:07d}")
            for ahead_minutes in (180, 60, 20):
                median = arrival - (late + k % 9) * MINUTE
                add_forecasts(session, rows=[(order.id, median - 15 * MINUTE, median,
                                              median + 15 * MINUTE, k % 2)],
                              made_at=arrival - ahead_minutes * MINUTE)
            order.arrived_at = arrival


def test_each_refresh_judges_only_the_new_arrivals_and_agrees_with_judging_all(
        services: Services) -> None:
    _visits_arrive(services, first=0, count=60, late=5)
    at = replace(services, clock=lambda: NOW)
    first = NOW + timedelta(hours=9, minutes=55)  # after the first 60 arrivals, before the rest
    with transaction(at.sessions) as session:
        predictions(session, [], services=at, now=first)
    assert len(at.learned.judged) == 180
    _visits_arrive(services, first=60, count=60, late=25)  # arriving later and later
    second = first + 12 * timedelta(hours=1)
    with transaction(at.sessions) as session:
        predictions(session, [], services=at, now=second)
        everything = resolved_forecasts(session, before=second, limit=30_000)
    assert len(at.learned.judged) == 360
    assert at.learned.calibration == calibrate(everything, coverage=0.9)
    assert at.learned.calibration.scales(120, 0)[1] > 1  # what arrived late widened it
