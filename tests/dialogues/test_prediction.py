"""The arrival prediction: the fixed rule, and the learned model with its calibration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pytest

from dialogues.prediction import (
    UNJUDGED,
    ArrivalModel,
    Calibration,
    Position,
    PredictionRules,
    RouteContext,
    Stop,
    calibrate,
    distance_km,
    learn,
    predict_route,
)
from tests.conftest import NOW

DAY = NOW.replace(hour=7)  # 08:00 in Berlin


def stops(n: int = 5) -> list[Stop]:
    return [Stop(order_id=i, planned_minutes=60, window_start=DAY,
                 lat=52.50 + 0.01 * i, lon=13.40) for i in range(1, n + 1)]


def test_the_window_narrows_as_fewer_stops_remain() -> None:
    predicted = predict_route(stops(), now=DAY)
    widths = [(p.window_end - p.window_start) for p in predicted.values()]
    assert widths == sorted(widths)
    assert predicted[1].window_end - predicted[1].eta == timedelta(minutes=20)
    assert predicted[3].stop == 3 and predicted[3].stops == 5


def test_finished_and_current_visits_move_the_rest() -> None:
    route = stops()
    done = [Stop(**{**route[0].__dict__, "arrived_at": DAY, "finished_at": DAY + timedelta(
        minutes=90)}),
            Stop(**{**route[1].__dict__, "arrived_at": DAY + timedelta(minutes=110)}),
            *route[2:]]
    now = DAY + timedelta(minutes=120)
    predicted = predict_route(done, now=now)
    assert set(predicted) == {3, 4, 5}
    # Stop 2 started at 09:50 and takes 60 minutes; stop 3 comes after it, ±20 (one ahead).
    assert predicted[3].eta >= DAY + timedelta(minutes=170)
    assert predicted[3].window_end - predicted[3].eta == timedelta(minutes=20)


def test_a_dispatcher_eta_wins_for_the_current_leg() -> None:
    route = stops(3)
    route[0] = Stop(**{**route[0].__dict__, "eta": DAY + timedelta(minutes=50)})
    predicted = predict_route(route, now=DAY)
    assert predicted[1].eta == DAY + timedelta(minutes=50)
    assert predicted[2].eta >= DAY + timedelta(minutes=110)


def test_positions_give_travel_time_by_distance() -> None:
    assert 0.55 < distance_km((52.50, 13.40), (52.505, 13.40)) < 0.56
    route = [Stop(order_id=1, planned_minutes=30, window_start=None, lat=52.60, lon=13.40)]
    near = predict_route(route, now=DAY, position=Position(52.59, 13.40, DAY))
    far = predict_route(route, now=DAY, position=Position(52.40, 13.40, DAY))
    rules = PredictionRules()
    expected = timedelta(hours=distance_km((52.40, 13.4), (52.60, 13.4)) * rules.road_factor
                         / rules.urban_speed_kmh)
    assert far[1].eta - DAY == expected
    assert near[1].eta < far[1].eta


def test_cancelled_stops_leave_the_route() -> None:
    route = stops(3)
    route[1] = Stop(**{**route[1].__dict__, "cancelled": True})
    predicted = predict_route(route, now=DAY)
    assert set(predicted) == {1, 3} and predicted[3].stops == 2


# The learned model ----------------------------------------------------------------------------

LEARNED = PredictionRules(method="learned")


@dataclass(frozen=True)
class Visit:
    technician_id: str
    day: object
    job_type: str | None
    planned_minutes: int
    duration_minutes: float
    drive_minutes: float | None = None
    drive_km: float | None = None
    drive_hour: int | None = None
    start_minute: int | None = None
    eta_error_minutes: float | None = None
    eta_horizon_minutes: float | None = None


def history(pace: dict[str, float], jobs: int = 120, seed: int = 3) -> list[Visit]:
    rng = np.random.default_rng(seed)
    return [Visit(t, DAY.date(), None, 60, 60 * p * float(np.exp(rng.normal(0, 0.2))),
                  drive_minutes=float(5 + 3 * km * np.exp(rng.normal(0, 0.2))), drive_km=km,
                  drive_hour=10, start_minute=460)
            for t, p in pace.items() for km in rng.uniform(1, 8, jobs)]


def context(now: datetime = DAY, technician: str = "fast") -> RouteContext:
    return RouteContext(technician, DAY.date(), (now - DAY.replace(hour=0)).total_seconds() / 60
                        - 60)  # DAY is 08:00 Berlin = 07:00 UTC


def test_with_no_history_the_windows_are_wide() -> None:
    predicted = predict_route(stops(4), now=DAY, rules=LEARNED, model=ArrivalModel())
    widths = [(p.window_end - p.window_start) / timedelta(minutes=1) for p in predicted.values()]
    assert widths[0] >= 30 and widths[-1] >= 120  # honest priors, never a confident guess
    assert widths == sorted(widths)


def test_learning_finds_each_technicians_pace_and_narrows_the_window() -> None:
    model = learn(history({"fast": 0.8, "slow": 1.4, "mid": 1.0}))
    fast, slow = model.job_shift("fast", "60 min"), model.job_shift("slow", "60 min")
    assert slow.mean - fast.mean == pytest.approx(np.log(1.4 / 0.8), abs=0.1)
    assert 2.5 < model.drive_per_km < 3.5
    prior = predict_route(stops(4), now=DAY, rules=LEARNED, model=ArrivalModel())
    learned = predict_route(stops(4), now=DAY, rules=LEARNED, model=model, context=context())
    assert (learned[4].window_end - learned[4].window_start) < (
        prior[4].window_end - prior[4].window_start)
    slow_day = predict_route(stops(4), now=DAY, rules=LEARNED, model=model,
                             context=context(technician="slow"))
    assert slow_day[4].eta > learned[4].eta


def test_a_job_that_has_run_long_moves_the_next_stop_later() -> None:
    model = learn(history({"fast": 1.0}))
    route = stops(2)
    started = DAY + timedelta(minutes=10)
    route[0] = Stop(**{**route[0].__dict__, "arrived_at": started})
    early = predict_route(route, now=started + timedelta(minutes=20), rules=LEARNED,
                          model=model, context=context())
    late = predict_route(route, now=started + timedelta(minutes=110), rules=LEARNED,
                         model=model, context=context())
    assert late[2].eta - early[2].eta > timedelta(minutes=40)


def test_no_window_opens_before_the_booked_one_or_lies_in_the_past() -> None:
    model = learn(history({"fast": 1.0}))
    route = [Stop(order_id=i, planned_minutes=60, window_start=DAY + timedelta(hours=2 * i),
                  window_end=DAY + timedelta(hours=2 * i + 3), lat=52.5 + 0.01 * i, lon=13.4)
             for i in range(1, 4)]
    now = DAY + timedelta(minutes=30)
    for order_id, p in predict_route(route, now=now, rules=LEARNED, model=model,
                                     context=context(now)).items():
        assert p.window_start >= max(now, route[order_id - 1].window_start)
        assert p.window_start <= p.eta <= p.window_end
        assert 0.0 <= p.late <= 1.0


def test_a_technician_far_behind_is_likely_late() -> None:
    model = learn(history({"fast": 1.0}))
    route = [Stop(order_id=1, planned_minutes=60, window_start=DAY, arrived_at=DAY,
                  lat=52.5, lon=13.4),
             Stop(order_id=2, planned_minutes=60, window_start=DAY,
                  window_end=DAY + timedelta(hours=2), lat=52.55, lon=13.4)]
    on_time = predict_route(route, now=DAY + timedelta(minutes=20), rules=LEARNED, model=model,
                            context=context())
    behind = predict_route(route, now=DAY + timedelta(minutes=150), rules=LEARNED, model=model,
                           context=context())
    assert on_time[2].late < 0.2 < 0.9 < behind[2].late


def test_the_prediction_is_the_same_for_the_same_day() -> None:
    model = learn(history({"fast": 1.0}))
    first = predict_route(stops(3), now=DAY, rules=LEARNED, model=model, context=context())
    assert first == predict_route(stops(3), now=DAY, rules=LEARNED, model=model,
                                  context=context())


@dataclass(frozen=True)
class Past:
    made_at: datetime
    low: datetime
    median: datetime
    high: datetime
    arrived_at: datetime
    ahead: int = 0
    window_start: datetime | None = None


def test_calibration_widens_what_missed_and_narrows_what_was_too_careful() -> None:
    rng = np.random.default_rng(5)
    made = DAY

    def forecasts(spread: float) -> list[Past]:
        return [Past(made, made + timedelta(minutes=80), made + timedelta(minutes=90),
                     made + timedelta(minutes=100),
                     made + timedelta(minutes=90 + float(rng.normal(0, spread))))
                for _ in range(400)]

    assert calibrate(forecasts(5), coverage=0.9, minimum=40) != UNJUDGED
    wide = calibrate(forecasts(20), coverage=0.9)  # missed: ±10 said, ±33 happened
    narrow = calibrate(forecasts(2), coverage=0.9)  # too careful: ±10 said, ±3 happened
    lower, upper = wide.scales(90)
    assert lower > 2 and upper > 2
    assert max(narrow.scales(90)) < 0.6
    assert calibrate(forecasts(5)[:10], coverage=0.9) == UNJUDGED  # too few to judge
    assert isinstance(narrow, Calibration)


def test_an_interval_that_cannot_miss_low_leaves_the_misses_to_its_upper_side() -> None:
    rng = np.random.default_rng(8)
    made = DAY
    # Every interval starts where the booked window opens: nobody arrives before it, a third
    # arrive right then (the technician waited at the door), the rest spread above.
    opens = made + timedelta(minutes=60)
    forecasts = [Past(made, opens, made + timedelta(minutes=70), made + timedelta(minutes=90),
                      made + timedelta(minutes=60 if k % 3 == 0 else 60 + float(
                          rng.exponential(15))), window_start=opens) for k in range(600)]
    calibration = calibrate(forecasts, coverage=0.9)
    lower, upper = calibration.scales(70, 0, bound=True)
    assert calibration.scales(70, 0, bound=False) == (lower, upper)  # none free: as the bound

    def held(forecast: Past) -> bool:
        low = forecast.median - lower * (forecast.median - forecast.low)
        high = forecast.median + upper * (forecast.high - forecast.median)
        return low <= forecast.arrived_at <= high

    # The upper side alone carries the 10 % of misses: 0.9 held, not 0.95.
    assert np.mean([held(f) for f in forecasts]) == pytest.approx(0.9, abs=0.01)


def test_a_window_narrower_than_the_booked_one_needs_a_track_record() -> None:
    evening = DAY - timedelta(hours=14)  # 18:00 the evening before
    booked = [Stop(order_id=i, planned_minutes=45, window_start=DAY + timedelta(hours=2 * i),
                   window_end=DAY + timedelta(hours=2 * i + 2), lat=52.5 + 0.01 * i, lon=13.4)
              for i in range(3)]
    model = learn(history({"fast": 0.8}))
    untried = predict_route(booked, now=evening, rules=LEARNED, model=model,
                            context=context(evening))
    for stop in booked:  # the evening before, no forecast ever judged: never inside the booked
        told = untried[stop.order_id]
        assert stop.window_end is not None
        assert told.window_start == stop.window_start and told.window_end >= stop.window_end
    made = evening
    judged = [Past(made, made + timedelta(minutes=900), made + timedelta(minutes=910),
                   made + timedelta(minutes=920), made + timedelta(minutes=910 + k % 7 - 3),
                   ahead=k % 2) for k in range(200)]
    trusted = calibrate(judged, coverage=0.9)
    assert trusted.trusts(910, 0) and trusted.trusts(910, 1) and not trusted.trusts(60, 0)
    tried = predict_route(booked, now=evening, rules=LEARNED, model=model,
                          calibration=trusted, context=context(evening))
    first = tried[booked[0].order_id]
    assert booked[0].window_end is not None
    assert first.window_end - first.window_start < booked[0].window_end - booked[0].window_start


def test_intervals_held_by_the_window_s_opening_are_calibrated_apart_from_free_ones() -> None:
    rng = np.random.default_rng(9)
    made = DAY
    opens = made + timedelta(minutes=60)

    def past(bound: bool, spread: float) -> Past:
        low = opens if bound else made + timedelta(minutes=60)
        return Past(made, low, made + timedelta(minutes=70), made + timedelta(minutes=80),
                    made + timedelta(minutes=70 + float(rng.normal(0, spread))),
                    window_start=opens if bound else made - timedelta(hours=1))

    # Held by the opening: right as said. Free (the window opened long ago): three times off.
    calibration = calibrate([past(True, 3) for _ in range(300)]
                            + [past(False, 18) for _ in range(300)], coverage=0.9)
    assert max(calibration.scales(70, 0, bound=True)) < 1.0
    assert min(calibration.scales(70, 0, bound=False)) > 2.0
