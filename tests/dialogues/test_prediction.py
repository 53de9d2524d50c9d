"""The arrival prediction: narrows as fewer stops remain; positions give travel times."""

from __future__ import annotations

from datetime import timedelta

from dialogues.prediction import Position, PredictionRules, Stop, distance_km, predict_route
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
