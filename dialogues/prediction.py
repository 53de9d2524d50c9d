"""Predict when the technician reaches each remaining stop of the day, and how sure that is.

The model learns from finished visits (`learn`): how long jobs take against their planned
minutes, per technician and kind of job; how long drives take against distance and hour; how
the day's traffic varies; when technicians set off; how right the dispatcher's ETAs were. With no
history it stands on wide priors. `predict_route` samples the rest of a route many times (the job
under way conditioned on how long it has already run, never before a booked window opens) and
takes quantiles; `calibrate` then stretches those quantiles until past forecasts of the same
horizon held as often as claimed (split-conformal, on the model's own track record).
Everything here is plain values and numpy: no I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Protocol

import numpy as np

from dialogues.model import Prediction

MINUTE = timedelta(minutes=1)


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
    window_end: datetime | None = None
    eta_at: datetime | None = None  # when the dispatcher said it
    departed_at: datetime | None = None  # when the technician set off for this stop
    job_type: str | None = None


@dataclass(frozen=True)
class Position:
    """Where the technician was last seen."""

    lat: float
    lon: float
    at: datetime


@dataclass(frozen=True)
class PredictionRules:
    """How the prediction is made (config.yml, section prediction)."""

    method: str = "learned"  # learned | fixed (the rule before the learned model, for comparison)
    coverage: float = 0.9  # the share of visits whose window must hold
    samples: int = 600
    # The fixed rule's constants (and the learned model's prior for distances).
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


def _point(stop: Stop) -> tuple[float, float] | None:
    return (stop.lat, stop.lon) if stop.lat is not None and stop.lon is not None else None


# What history teaches -------------------------------------------------------------------------


class Visit(Protocol):
    """A finished visit as the model reads it (storage.history.Visit has these fields)."""

    @property
    def technician_id(self) -> str: ...

    @property
    def day(self) -> date: ...

    @property
    def job_type(self) -> str | None: ...

    @property
    def planned_minutes(self) -> int: ...

    @property
    def duration_minutes(self) -> float: ...

    @property
    def drive_minutes(self) -> float | None: ...

    @property
    def drive_km(self) -> float | None: ...

    @property
    def drive_hour(self) -> int | None: ...

    @property
    def start_minute(self) -> int | None: ...

    @property
    def eta_error_minutes(self) -> float | None: ...

    @property
    def eta_horizon_minutes(self) -> float | None: ...



_STANDARD: np.ndarray = np.sort(np.random.default_rng(20261203).standard_normal(400))


def _normal(sd: float) -> np.ndarray:
    """Return a fixed sample of a centred normal: a prior as data the model starts from."""
    return np.asarray(sd * (_STANDARD - _STANDARD.mean()) / _STANDARD.std(), dtype=float)


POOL = 4096  # a spread is kept as this many draws, so sampling is one integer index


@dataclass(frozen=True, eq=False)
class Spread:
    """An empirical distribution (log residuals or minutes), blended with a prior when thin."""

    pool: np.ndarray

    @classmethod
    def of(cls, data: Sequence[float] | np.ndarray, prior: np.ndarray,
           strength: float = 30.0) -> Spread:
        """Weigh the data against the prior as n : strength (the prior fades as data grows)."""
        data = np.asarray(data, dtype=float)
        n = len(data)
        share = n / (n + strength)
        from_data = round(POOL * share)
        # Evenly through each (sorted) source: the pool keeps its shape without randomness.
        parts = [_even(np.sort(data), from_data), _even(np.sort(prior), POOL - from_data)]
        return cls(np.sort(np.concatenate(parts)))

    def draw(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        """Draw values from the pool."""
        return np.asarray(self.pool[rng.integers(0, len(self.pool), shape)], dtype=float)

    def draw_above(self, rng: np.random.Generator, floor: np.ndarray) -> np.ndarray:
        """Draw each value from the pool's part above its floor (NaN where none lies above)."""
        first = np.searchsorted(self.pool, floor, side="right")
        above = len(self.pool) - first
        picked = first + np.floor(rng.random(len(floor)) * np.maximum(above, 1)).astype(int)
        values = self.pool[np.minimum(picked, len(self.pool) - 1)]
        return np.asarray(np.where(above > 0, values, np.nan), dtype=float)

    @property
    def values(self) -> np.ndarray:
        """Return the pool (for a prior built from another spread)."""
        return self.pool


def _even(sorted_values: np.ndarray, count: int) -> np.ndarray:
    if count <= 0 or len(sorted_values) == 0:
        return np.empty(0)
    at = ((np.arange(count) + 0.5) * len(sorted_values) / count).astype(int)
    return np.asarray(sorted_values[np.minimum(at, len(sorted_values) - 1)], dtype=float)


@dataclass(frozen=True)
class Shift:
    """A learned log-scale shift (a technician's pace, a kind of job) and its uncertainty."""

    mean: float = 0.0
    sd: float = 0.0


def _shrunk(groups: Mapping[str, list[float]], noise_var: float) -> tuple[dict[str, Shift], float]:
    """Shrink each group's mean residual towards 0 (empirical Bayes); return them and tau²."""
    means = {k: float(np.mean(v)) for k, v in groups.items() if v}
    if len(means) >= 3:
        sizes = [len(groups[k]) for k in means]
        between = float(np.var(list(means.values())))
        tau2 = max(1e-4, between - float(np.mean([noise_var / n for n in sizes])))
    else:
        tau2 = 0.02  # prior: paces within about ±15 %
    shifts = {}
    for key, values in groups.items():
        n = len(values)
        precision = 1 / tau2 + n / max(noise_var, 1e-4)
        shifts[key] = Shift(float(np.sum(values)) / max(noise_var, 1e-4) / precision,
                            math.sqrt(1 / precision))
    return shifts, tau2


@dataclass(frozen=True, eq=False)
class ArrivalModel:
    """What history taught about jobs, drives, starts and ETAs; priors where it taught little."""

    visits: int = 0
    job_base: float = 0.0  # log(actual ÷ planned) of an average job
    job_spread: Spread = field(default_factory=lambda: Spread.of([], _normal(0.45)))
    job_types: Mapping[str, Shift] = field(default_factory=dict)
    job_spreads: Mapping[str, Spread] = field(default_factory=dict)  # kinds with enough jobs
    job_technicians: Mapping[str, Shift] = field(default_factory=dict)
    job_tau: float = 0.15  # a technician the model has not met yet: pace unknown by this much
    drive_intercept: float = 6.0  # minutes = intercept + per_km × straight-line km
    drive_per_km: float = 3.4
    drive_spread: Spread = field(default_factory=lambda: Spread.of([], _normal(0.45)))
    drive_plain: float = 20.0  # a drive between addresses without coordinates, typically
    drive_minutes: Spread = field(
        default_factory=lambda: Spread.of([], 20 * np.exp(_normal(0.6))))  # no coordinates
    drive_hours: Mapping[int, float] = field(default_factory=dict)
    drive_technicians: Mapping[str, Shift] = field(default_factory=dict)
    drive_tau: float = 0.1
    day_sd: float = 0.2  # the city's day-to-day traffic, log scale
    drive_noise_var: float = 0.2
    starts: Spread = field(default_factory=lambda: Spread.of([], 465 + 25 * _normal(1.0)))
    eta_errors: tuple[tuple[float, float], ...] = ()  # (horizon, error) in minutes

    def job_shift(self, technician: str | None, kind: str) -> Shift:
        """Return the log pace of this technician at this kind of job, with its uncertainty."""
        of_kind = self.job_types.get(kind, Shift())
        person = self.job_technicians.get(technician or "", Shift(0.0, self.job_tau))
        return Shift(self.job_base + of_kind.mean + person.mean,
                     math.hypot(of_kind.sd, person.sd))

    def job_spread_of(self, kind: str) -> Spread:
        """Return the spread of this kind of job, or of all jobs while it has few."""
        return self.job_spreads.get(kind, self.job_spread)

    def drive_shift(self, technician: str | None) -> Shift:
        """Return the technician's log pace behind the wheel."""
        return self.drive_technicians.get(technician or "", Shift(0.0, self.drive_tau))


KIND_SPREAD_JOBS = 60  # a kind of job gets its own spread once this many have been seen


def job_kind(job_type: str | None, planned_minutes: int) -> str:
    """Name the kind of job: dispatch's job type, else its planned minutes (45 ≠ 120)."""
    return job_type or f"{planned_minutes} min"


def learn(visits: Sequence[Visit]) -> ArrivalModel:
    """Learn the model from finished visits (any order); an empty history gives the priors."""
    prior = ArrivalModel()
    jobs = [v for v in visits if v.duration_minutes > 0 and v.planned_minutes > 0]
    if not jobs:
        return prior
    ratio = np.log([v.duration_minutes / v.planned_minutes for v in jobs])
    base = float(np.median(ratio))
    centred = ratio - base
    noise = float(np.var(centred)) if len(jobs) > 1 else 0.2
    by_type: defaultdict[str, list[float]] = defaultdict(list)
    for v, r in zip(jobs, centred, strict=True):
        by_type[job_kind(v.job_type, v.planned_minutes)].append(float(r))
    types, _ = _shrunk(by_type, noise) if len(by_type) > 1 else ({}, 0.0)
    after_type = np.array([r - types.get(job_kind(v.job_type, v.planned_minutes), Shift()).mean
                           for v, r in zip(jobs, centred, strict=True)])
    by_person: defaultdict[str, list[float]] = defaultdict(list)
    for v, r in zip(jobs, after_type, strict=True):
        by_person[v.technician_id].append(float(r))
    people, job_tau2 = _shrunk(by_person, float(np.var(after_type)))
    residual = np.array([r - people[v.technician_id].mean
                         for v, r in zip(jobs, after_type, strict=True)])
    kinds = [job_kind(v.job_type, v.planned_minutes) for v in jobs]
    spreads = {kind: Spread.of(residual[[k == kind for k in kinds]], _normal(0.45))
               for kind in set(kinds) if kinds.count(kind) >= KIND_SPREAD_JOBS}
    model = replace(prior, visits=len(jobs), job_base=base, job_types=types,
                    job_technicians=people, job_tau=math.sqrt(job_tau2),
                    job_spread=Spread.of(residual, _normal(0.45)), job_spreads=spreads)
    return _learn_drives(model, visits)


def _learn_drives(model: ArrivalModel, visits: Sequence[Visit]) -> ArrivalModel:
    legs = [v for v in visits if v.drive_minutes is not None and v.drive_minutes > 0.5]
    starts = [v.start_minute for v in visits if v.start_minute is not None]
    errors = tuple((float(v.eta_horizon_minutes), float(v.eta_error_minutes)) for v in visits
                   if v.eta_error_minutes is not None and v.eta_horizon_minutes is not None)
    model = replace(model, starts=Spread.of(starts, model.starts.values), eta_errors=errors)
    if not legs:
        return model
    minutes = np.array([v.drive_minutes for v in legs], dtype=float)
    located = np.array([v.drive_km is not None for v in legs])
    intercept, per_km = model.drive_intercept, model.drive_per_km
    if located.sum() >= 30:
        x = np.array([v.drive_km for v in legs if v.drive_km is not None], dtype=float)
        y = minutes[located]
        per_km, intercept = (float(c) for c in np.polyfit(x, y, 1))
        if per_km <= 0.2 or intercept < 1:  # a fit that makes no physical sense: keep a ratio
            intercept, per_km = 1.0, max(0.2, float(np.median((y - 1) / np.maximum(x, 0.3))))
    plain = float(np.median(minutes[~located])) if (~located).any() else model.drive_plain
    expected = np.array([intercept + per_km * v.drive_km if v.drive_km is not None else plain
                         for v in legs])
    residual = np.log(minutes / np.maximum(expected, 1.0))
    noise = float(np.var(residual)) if len(legs) > 1 else 0.2
    hours, _ = _shrunk(_groups(legs, residual, lambda v: str(v.drive_hour)), noise)
    residual = residual - np.array([hours[str(v.drive_hour)].mean for v in legs])
    days, day_tau2 = _shrunk(_groups(legs, residual, lambda v: v.day.isoformat()), noise)
    residual = residual - np.array([days[v.day.isoformat()].mean for v in legs])
    people, drive_tau2 = _shrunk(_groups(legs, residual, lambda v: v.technician_id), noise)
    residual = residual - np.array([people[v.technician_id].mean for v in legs])
    return replace(
        model, drive_intercept=intercept, drive_per_km=per_km, drive_plain=plain,
        drive_spread=Spread.of(residual[located], _normal(0.45)),
        drive_minutes=Spread.of(plain * np.exp(residual[~located]), model.drive_minutes.values),
        drive_hours={int(h): s.mean for h, s in hours.items() if h != "None"},
        drive_technicians=people, drive_tau=math.sqrt(drive_tau2),
        day_sd=math.sqrt(day_tau2) if len(days) >= 3 else model.day_sd,
        drive_noise_var=noise)


def _groups(legs: Sequence[Visit], values: np.ndarray,
            key: Callable[[Visit], str]) -> dict[str, list[float]]:
    groups: defaultdict[str, list[float]] = defaultdict(list)
    for v, value in zip(legs, values, strict=True):
        groups[key(v)].append(float(value))
    return groups


@dataclass(frozen=True)
class Traffic:
    """Today's city-wide drive pace (log scale), from today's drives so far."""

    mean: float = 0.0
    sd: float = 0.2


def traffic_today(model: ArrivalModel, today: Iterable[Visit]) -> Traffic:
    """Shrink today's mean drive residual towards an ordinary day."""
    residuals = []
    for v in today:
        if v.drive_minutes is None or v.drive_minutes <= 0.5:
            continue
        expected = max(1.0, model.drive_intercept + model.drive_per_km * v.drive_km
                       if v.drive_km is not None else model.drive_plain)
        residuals.append(math.log(v.drive_minutes / expected)
                         - model.drive_hours.get(v.drive_hour or -1, 0.0)
                         - model.drive_shift(v.technician_id).mean)
    day_var, noise = model.day_sd ** 2, max(model.drive_noise_var, 1e-4)
    precision = 1 / day_var + len(residuals) / noise
    return Traffic(sum(residuals) / noise / precision, math.sqrt(1 / precision))


# What the model's own track record says ----------------------------------------------------------

HORIZONS = (30.0, 60.0, 120.0, 240.0)  # minutes: the calibration buckets' upper edges


class PastForecast(Protocol):
    """A forecast and the arrival it was about (storage.history.Forecast has these)."""

    @property
    def made_at(self) -> datetime: ...

    @property
    def low(self) -> datetime: ...

    @property
    def median(self) -> datetime: ...

    @property
    def high(self) -> datetime: ...

    @property
    def arrived_at(self) -> datetime: ...

    @property
    def ahead(self) -> int: ...

    @property
    def window_start(self) -> datetime | None: ...


Kind = tuple[int, int, int]  # horizon bucket, later stop (1) or the next (0), floor-bound (1)


@dataclass(frozen=True)
class Calibration:
    """How much to stretch each side of the model's interval, per kind of forecast.

    A kind is the horizon's bucket, whether the stop is the technician's next one or one
    further down the route, and whether the interval starts where the booked window opens
    (floor-bound: it cannot miss low, and its errors above are those of a wait at the door).
    Their errors differ: one stretch for all would widen the ones that need none.
    """

    scales_by_kind: Mapping[Kind, tuple[float, float]] = field(default_factory=dict)
    default: tuple[float, float] = (1.0, 1.0)
    judged: int = 0  # how many past forecasts taught it
    # Kinds with a track record of their own (or of their horizon): only these may be told a
    # window narrower than the booked one.
    trusted: frozenset[Kind] = frozenset()

    def scales(self, horizon_minutes: float, ahead: int = 0,
               bound: bool = False) -> tuple[float, float]:
        """Return (lower, upper) stretch factors for a forecast of this kind."""
        return self.scales_by_kind.get(kind_of(horizon_minutes, ahead, bound), self.default)

    def trusts(self, horizon_minutes: float, ahead: int = 0, bound: bool = False) -> bool:
        """Say whether forecasts of this kind have been judged often enough to narrow a window."""
        return kind_of(horizon_minutes, ahead, bound) in self.trusted


# Until the model has a track record, its own spread is trusted only a quarter more than it says.
UNJUDGED = Calibration(default=(1.25, 1.25))
FLOOR_MINUTES = 3.0  # a side of the interval narrower than this is judged as if it were this wide
# Stretches are kept within these bounds: a calibration gone wrong cannot make a window vanish,
# and a side the model thought certain (all paths wait for the window) can still open up.
STRETCH_BOUNDS = (0.2, 30.0)


def bucket_of(horizon_minutes: float) -> int:
    """Return the calibration bucket of a forecast made this many minutes ahead."""
    return next((i for i, edge in enumerate(HORIZONS) if horizon_minutes < edge), len(HORIZONS))


def kind_of(horizon_minutes: float, ahead: int, bound: bool = False) -> Kind:
    """Return the forecast's kind: horizon bucket, next stop (0) or later (1), floor-bound."""
    return bucket_of(horizon_minutes), min(ahead, 1), int(bound)


BOUND_SLACK = timedelta(seconds=30)  # an interval starting this close to the window's opening


def _conformal(scores: np.ndarray, level: float) -> float:
    """Return the finite-sample conformal quantile of the scores at this level."""
    n = len(scores)
    rank = min(n, math.ceil((n + 1) * level))
    return float(np.sort(scores)[rank - 1])


def _joint_stretch(lower: np.ndarray, upper: np.ndarray, coverage: float) -> tuple[float, float]:
    """Return (lower, upper) stretches under which `coverage` of the past intervals held.

    The lower side is held at its own share of the misses, (1 - coverage) / 2; the upper side
    then takes what the lower side leaves of them. Nobody arrives before the booked window
    opens, so a forecast whose interval starts there cannot miss low: were each side held to
    its half regardless, such intervals would hold far more often than they claim, and be wider.
    """
    least, most = STRETCH_BOUNDS
    low = min(max(_conformal(lower, 1 - (1 - coverage) / 2), least), most)
    n = len(upper)
    needed = min(n, math.ceil((n + 1) * coverage))  # split-conformal's finite-sample rank
    held_low = np.sort(upper[lower <= low])
    high = held_low[needed - 1] if len(held_low) >= needed else most
    return low, min(max(float(high), least), most)


# Kind (bucket, later, bound), upper score, lower score.
Judged = tuple[int, int, int, float, float]


def judge(forecast: PastForecast) -> Judged:
    """Score a past forecast against its arrival: how many of its own sides off it was."""
    horizon = (forecast.median - forecast.made_at) / MINUTE
    up = max((forecast.high - forecast.median) / MINUTE, FLOOR_MINUTES)
    down = max((forecast.median - forecast.low) / MINUTE, FLOOR_MINUTES)
    late = (forecast.arrived_at - forecast.median) / MINUTE
    opens = forecast.window_start
    bound = (opens is not None and opens > forecast.made_at
             and forecast.low <= opens + BOUND_SLACK)
    return (*kind_of(horizon, forecast.ahead, bound), late / up, -late / down)


def calibrate(forecasts: Sequence[PastForecast], *, coverage: float,
              minimum: int = 40) -> Calibration:
    """Find the stretch that would have made past intervals hold `coverage` of the time."""
    return calibrate_judged([judge(f) for f in forecasts], coverage=coverage, minimum=minimum)


def calibrate_judged(rows: Sequence[Judged], *, coverage: float,
                     minimum: int = 40) -> Calibration:
    """Calibrate from forecasts already judged (`judge`), as a service keeps them."""
    if len(rows) < minimum:
        return UNJUDGED
    table = np.array(rows, dtype=float)

    def stretch(mine: np.ndarray, fallback: tuple[float, float]) -> tuple[float, float]:
        if len(mine) < minimum:  # too few of this kind: as the wider kind they belong to
            return fallback
        return _joint_stretch(mine[:, 4], mine[:, 3], coverage)

    pooled = stretch(table, UNJUDGED.default)
    kinds, trusted = {}, set()
    for bucket in range(len(HORIZONS) + 1):
        in_bucket = table[table[:, 0] == bucket]
        of_bucket = stretch(in_bucket, pooled)
        for later in (0, 1):
            in_place = in_bucket[in_bucket[:, 1] == later]
            of_place = stretch(in_place, of_bucket)
            for bound in (0, 1):
                kind = (bucket, later, bound)
                kinds[kind] = stretch(in_place[in_place[:, 2] == bound], of_place)
                if len(in_bucket) >= minimum:
                    trusted.add(kind)
    return Calibration(kinds, pooled, len(rows), frozenset(trusted))


# Sampling a route ------------------------------------------------------------------------------


def route_seed(technician: str, day: date) -> int:
    """Return a stable seed per technician and day: ticks see the same draws, windows are calm."""
    digest = hashlib.sha256(f"{technician}/{day.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass
class _Sampler:
    """Draws of one route's jobs and drives, `n` possible days at once."""

    model: ArrivalModel
    rng: np.random.Generator
    n: int
    technician: str | None
    traffic: Traffic
    local_minute: float  # the local minute of the day it is now
    drive_pace: np.ndarray = field(init=False)
    hour_shift: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # One pace per sample for the whole day: a slow day is slow at every stop.
        person = self.model.drive_shift(self.technician)
        self.drive_pace = np.exp(self.rng.normal(self.traffic.mean, self.traffic.sd, self.n)
                                 + self.rng.normal(person.mean, person.sd, self.n))
        self.hour_shift = np.array([self.model.drive_hours.get(h, 0.0) for h in range(24)])

    def job(self, stop: Stop, *, longer_than: float = 0.0) -> np.ndarray:
        """Draw the job's minutes; with `longer_than`, given it has already run that long."""
        kind = job_kind(stop.job_type, stop.planned_minutes)
        shift = self.model.job_shift(self.technician, kind)
        pace = self.rng.normal(shift.mean, shift.sd, self.n)
        spread = self.model.job_spread_of(kind)

        if longer_than <= 0:
            return np.asarray(stop.planned_minutes * np.exp(pace + spread.draw(
                self.rng, self.n)), dtype=float)
        # Given it has run `longer_than` minutes: drawn from the spread's part beyond that.
        floor = np.log(longer_than / stop.planned_minutes) - pace
        return self._or_beyond(stop.planned_minutes * np.exp(pace + spread.draw_above(
            self.rng, floor)), longer_than, scale=stop.planned_minutes)

    def drive(self, start: tuple[float, float] | None, end: tuple[float, float] | None,
              depart: np.ndarray, *, longer_than: float = 0.0) -> np.ndarray:
        """Draw the drive's minutes between two places, setting off `depart` minutes from now."""
        hours = ((self.local_minute + depart) // 60).astype(int) % 24
        pace = self.drive_pace * np.exp(self.hour_shift[hours])

        if start is None or end is None:
            spread, unit = self.model.drive_minutes, pace
            log_scale = False
        else:
            spread = self.model.drive_spread
            unit = max(1.0, self.model.drive_intercept
                       + self.model.drive_per_km * distance_km(start, end)) * pace
            log_scale = True
        if longer_than <= 0:
            values = spread.draw(self.rng, self.n)
            return np.asarray((np.exp(values) if log_scale else values) * unit, dtype=float)
        # Given it has lasted `longer_than` minutes: from the spread's part beyond that.
        floor = np.log(longer_than / unit) if log_scale else longer_than / unit
        values = spread.draw_above(self.rng, floor)
        return self._or_beyond((np.exp(values) if log_scale else values) * unit, longer_than,
                               scale=20.0)

    def _or_beyond(self, values: np.ndarray, lower: float, *, scale: float) -> np.ndarray:
        """Fill the draws that history had nothing beyond: they end some time after `lower`."""
        missing = ~np.isfinite(values) | (values <= lower)
        if not missing.any():
            return values
        extra = self.rng.exponential(0.25 * scale + 0.1 * lower, self.n)
        return np.asarray(np.where(missing, lower + extra, values), dtype=float)

    def setting_off(self) -> np.ndarray:
        """Draw when the technician sets off in the morning, minutes from now."""
        return self.model.starts.draw(self.rng, self.n) - self.local_minute

    def eta_error(self, horizon: float) -> np.ndarray:
        """Draw how wrong a dispatcher's ETA told this far ahead turns out (minutes)."""
        near = sorted(self.model.eta_errors, key=lambda e: abs(e[0] - horizon))[:60]
        if len(near) >= 20:
            return self.rng.choice(np.array([e for _, e in near]), size=self.n)
        return self.rng.normal(0, 5 + 0.25 * max(horizon, 0), self.n)


@dataclass(frozen=True)
class RouteContext:
    """Who drives the route, in which zone, and what today's traffic is like."""

    technician: str
    day: date
    local_minute: float  # now, in minutes after the route's local midnight
    traffic: Traffic | None = None


def predict_route(
    stops: list[Stop], *, now: datetime, position: Position | None = None,
    rules: PredictionRules = PredictionRules(), model: ArrivalModel | None = None,
    calibration: Calibration = UNJUDGED, context: RouteContext | None = None,
) -> dict[int, Prediction]:
    """Return a prediction for every stop not yet reached, keyed by order id."""
    if rules.method == "fixed" or model is None:
        return predict_route_fixed(stops, now=now, position=position, rules=rules)
    active = [s for s in stops if not s.cancelled]
    pending = [i for i, s in enumerate(active) if s.arrived_at is None]
    if not pending:
        return {}
    context = context or RouteContext("", now.date(), now.hour * 60 + now.minute)
    sampler = _Sampler(model, np.random.default_rng(route_seed(context.technician, context.day)),
                       rules.samples, context.technician,
                       context.traffic or Traffic(sd=model.day_sd), context.local_minute)
    free = np.zeros(rules.samples)  # minutes from now until the technician is free to drive on
    place = (position.lat, position.lon) if position else None
    moved_after: datetime | None = None  # the last arrival or finish seen
    for stop in active[:pending[0]]:
        moved_after = stop.finished_at or stop.arrived_at or moved_after
        place = _point(stop) or place
        if stop.finished_at is None and stop.arrived_at is not None:
            elapsed = max(0.0, (now - stop.arrived_at) / MINUTE)
            free = np.maximum(0.0, sampler.job(stop, longer_than=elapsed) - elapsed)
        else:
            free = np.zeros(rules.samples)
    arrivals, floors, ends = [], [], []
    for index in pending:
        stop = active[index]
        target = _point(stop)
        if index == pending[0]:
            arrival = _first_leg(sampler, stop, now, free, place, position, moved_after,
                                 first_of_day=index == 0)
        else:
            arrival = free + sampler.drive(place, target, free)
        floor = max(now, stop.window_start) if stop.window_start else now
        arrival = np.maximum(arrival, (floor - now) / MINUTE)  # nobody rings before the window
        arrivals.append(arrival)
        floors.append((floor - now) / MINUTE)
        ends.append((stop.window_end - now) / MINUTE if stop.window_end else math.inf)
        free = arrival + sampler.job(stop)
        place = target or place
    aheads = [position for position, _ in enumerate(pending)]
    summaries = _summarise(np.array(arrivals), np.array(floors), np.array(ends),
                           rules.coverage, calibration, aheads)
    return {active[index].order_id: summary.at(now, stop=index + 1, stops=len(active),
                                               ahead=ahead)
            for index, summary, ahead in zip(pending, summaries, aheads, strict=True)}


def _first_leg(sampler: _Sampler, stop: Stop, now: datetime, free: np.ndarray,
               place: tuple[float, float] | None, position: Position | None,
               moved_after: datetime | None, *, first_of_day: bool) -> np.ndarray:
    """Draw the arrival at the next stop: after the job under way, or on the road right now."""
    target = _point(stop)
    if np.any(free > 0):  # still at the previous job
        return np.asarray(free + sampler.drive(place, target, free), dtype=float)
    if (stop.eta is not None and stop.eta_at is not None
            and (moved_after is None or stop.eta_at >= moved_after)):
        horizon = (stop.eta - stop.eta_at) / MINUTE
        return _after_now(sampler, (stop.eta - now) / MINUTE + sampler.eta_error(horizon))
    if stop.departed_at is not None and (moved_after is None or stop.departed_at >= moved_after):
        if position is not None and position.at >= stop.departed_at and target is not None:
            since = max(0.0, (now - position.at) / MINUTE)
            left = sampler.drive((position.lat, position.lon), target, free)
            return _after_now(sampler, left - since)
        elapsed = max(0.0, (now - stop.departed_at) / MINUTE)
        start = np.full(sampler.n, -elapsed)
        return sampler.drive(place, target, start, longer_than=elapsed) - elapsed
    if first_of_day and moved_after is None:
        # The day has not begun: the technician sets off at a usual hour, not before now.
        setting_off = np.maximum(0.0, sampler.setting_off())
        home = (position.lat, position.lon) if position else None
        return np.asarray(setting_off + sampler.drive(home, target, setting_off), dtype=float)
    return sampler.drive(place, target, free)


def _after_now(sampler: _Sampler, arrival: np.ndarray) -> np.ndarray:
    """Keep arrivals in the future: one not yet seen is still to come."""
    passed = arrival <= 0
    if not passed.any():
        return arrival
    return np.where(passed, sampler.rng.exponential(5.0, sampler.n), arrival)


@dataclass(frozen=True)
class _Summary:
    """One stop's sampled arrival, reduced to what is told (minutes from now)."""

    low: float
    high: float
    median: float
    raw_low: float
    raw_high: float
    late: float

    def at(self, now: datetime, *, stop: int, stops: int, ahead: int) -> Prediction:
        """Return the prediction in clock times."""
        def when(minutes: float) -> datetime:
            return now + timedelta(seconds=round(minutes * 60))

        return Prediction(eta=when(self.median), window_start=when(self.low),
                          window_end=when(self.high), stop=stop, stops=stops, late=self.late,
                          raw=(when(self.raw_low), when(self.median), when(self.raw_high)),
                          ahead=ahead)


def _summarise(arrival: np.ndarray, floor: np.ndarray, window_end: np.ndarray, coverage: float,
               calibration: Calibration, aheads: list[int]) -> list[_Summary]:
    """Turn sampled arrivals (stops × samples) into calibrated windows and P(late)."""
    tail = (1 - coverage) / 2
    low, median, high = np.quantile(arrival, [tail, 0.5, 1 - tail], axis=1)
    # The window's opening (still to come) holds the interval's start: as `judge` files it.
    bound = (floor > 0) & (low <= floor + BOUND_SLACK / MINUTE)
    kinds = list(zip(median.tolist(), aheads, bound.tolist(), strict=True))
    scales = np.array([calibration.scales(m, a, b) for m, a, b in kinds])
    centre = median[:, None]
    stretched = np.where(arrival >= centre, centre + (arrival - centre) * scales[:, 1:2],
                         centre - (centre - arrival) * scales[:, 0:1])
    stretched = np.maximum(stretched, floor[:, None])  # never before the window, nor now
    # The window is the one the calibration judged: each side of the model's own interval (at
    # least FLOOR_MINUTES wide) times its stretch; never before the booked window, nor now.
    shown_low = np.maximum(median - scales[:, 0] * np.maximum(median - low, FLOOR_MINUTES),
                           floor)
    shown_high = median + scales[:, 1] * np.maximum(high - median, FLOOR_MINUTES)
    # Without a track record at this horizon the model may say "later", never "narrower".
    untrusted = np.array([not calibration.trusts(m, a, b) for m, a, b in kinds], dtype=bool)
    booked_end = np.where(np.isfinite(window_end), window_end, shown_high)
    shown_low = np.where(untrusted, floor, shown_low)
    shown_high = np.where(untrusted, np.maximum(shown_high, booked_end), shown_high)
    late = np.mean(stretched > window_end[:, None], axis=1)
    return [_Summary(max(float(a), float(f)), max(float(b), float(m)), float(m), float(lo),
                     float(hi), float(p))
            for a, b, m, lo, hi, p, f in zip(shown_low, shown_high, median, low, high, late,
                                             floor, strict=True)]


# The rule before the learned model: kept as the benchmark's baseline --------------------------


def travel(rules: PredictionRules, start: tuple[float, float] | None,
           end: tuple[float, float] | None) -> timedelta:
    """Estimate the drive between two points: straight line × road factor ÷ urban speed."""
    if start is None or end is None:
        return timedelta(minutes=rules.default_travel_minutes)
    hours = distance_km(start, end) * rules.road_factor / rules.urban_speed_kmh
    return timedelta(hours=hours)


def predict_route_fixed(
    stops: list[Stop], *, now: datetime, position: Position | None = None,
    rules: PredictionRules = PredictionRules(),
) -> dict[int, Prediction]:
    """Return the fixed rule's prediction: planned minutes, distance ÷ speed, ±20 + 25 per stop."""
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
        late = 1.0 if stop.window_end is not None and arrival > stop.window_end else 0.0
        predictions[stop.order_id] = Prediction(
            eta=arrival, window_start=max(arrival - half, earliest), window_end=arrival + half,
            stop=index, stops=total, late=late)
        clock = arrival + timedelta(minutes=stop.planned_minutes)
        place = _point(stop) or place
        ahead += 1
    return predictions


def told_window(prediction: Prediction | None, booked_start: datetime, booked_end: datetime
                ) -> tuple[datetime, datetime, datetime | None]:
    """Return the window (and ETA) a customer is told: the prediction's, else the booked one."""
    if prediction is None:
        return booked_start, booked_end, None
    return prediction.window_start, prediction.window_end, prediction.eta
