"""Predict when the technician reaches each remaining stop of the day, and how sure that is."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from dialogues.model import Prediction


@dataclass(frozen=True)
class Stop:
    """One visit of the technician's day, as the dispatch system reports it."""

    order_id: int
    planned_minutes: int
    window_start: datetime | None
    lat: float | None = None
    lon: float | None = None
    arrived_at: datetime | None = None
    finished_at: datetime | None = None
    eta: datetime | None = None  # the dispatcher's ETA for this stop, if it reported one
    cancelled: bool = False


@dataclass(frozen=True)
class Position:
    """Where the technician was last seen."""

    lat: float
    lon: float
    at: datetime


@dataclass(frozen=True)
class PredictionRules:
    """How travel and uncertainty are estimated (config.yml, section prediction)."""

    road_factor: float = 1.4
    urban_speed_kmh: float = 25
    minutes_per_stop_ahead: int = 25
    min_half_minutes: int = 20
    default_travel_minutes: int = 20  # between two stops without coordinates


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle distance (haversine) between two points in km."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def travel(rules: PredictionRules, start: tuple[float, float] | None,
           end: tuple[float, float] | None) -> timedelta:
    """Estimate the drive between two points: straight line × road factor ÷ urban speed."""
    if start is None or end is None:
        return timedelta(minutes=rules.default_travel_minutes)
    hours = distance_km(start, end) * rules.road_factor / rules.urban_speed_kmh
    return timedelta(hours=hours)


def _point(stop: Stop) -> tuple[float, float] | None:
    return (stop.lat, stop.lon) if stop.lat is not None and stop.lon is not None else None


def predict_route(
    stops: list[Stop], *, now: datetime, position: Position | None = None,
    rules: PredictionRules = PredictionRules(),
) -> dict[int, Prediction]:
    """Return a prediction for every stop not yet reached, keyed by order id."""
    active = [s for s in stops if not s.cancelled]
    total = len(active)
    predictions: dict[int, Prediction] = {}
    clock = now
    place: tuple[float, float] | None = (position.lat, position.lon) if position else None
    ahead = 0  # visits still to be done (or under way) before the stop being predicted
    for index, stop in enumerate(active, start=1):
        if stop.finished_at is not None:
            clock = max(clock, stop.finished_at) if stop.finished_at > now else clock
            place = _point(stop) or place
            continue
        if stop.arrived_at is not None:
            # The technician is there: this visit ends after its planned minutes.
            clock = max(now, stop.arrived_at + timedelta(minutes=stop.planned_minutes))
            place = _point(stop) or place
            ahead += 1
            continue
        if stop.eta is not None and ahead == 0:
            arrival = max(stop.eta, now)  # the dispatcher's word for the current leg
        else:
            arrival = clock + travel(rules, place, _point(stop))
        if stop.window_start is not None:
            arrival = max(arrival, stop.window_start)  # nobody rings before the window opens
        # The next stop, or one with a single visit before it: ±min_half; each further
        # visit before it adds its own uncertainty.
        half = timedelta(minutes=rules.min_half_minutes
                         + rules.minutes_per_stop_ahead * max(0, ahead - 1))
        earliest = max(now, stop.window_start) if stop.window_start is not None else now
        predictions[stop.order_id] = Prediction(
            eta=arrival, window_start=max(arrival - half, earliest), window_end=arrival + half,
            stop=index, stops=total)
        clock = arrival + timedelta(minutes=stop.planned_minutes)
        place = _point(stop) or place
        ahead += 1
    return predictions
