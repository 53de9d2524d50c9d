"""The best any predictor could do in a simulated world: its true distributions, sampled.

At a moment of a technician's day the oracle sees what dispatch could see then (visits done,
the job under way and how long it has run, the drive under way and how long it has lasted,
cancellations so far) and knows the world's true parameters: each technician's pace, each
job type's spread, the traffic's, the road factors. It does not know the day's traffic or the
future draws. Its central interval is what a perfect model of this world would answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from bench.world import Simulation, TechnicianDay, Visit, World, km

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class OracleAnswer:
    """The oracle's window and median for one visit at one moment."""

    low: datetime
    high: datetime
    median: datetime


def _drive(world: World, rng: np.random.Generator, n: int, a: tuple[float, float],
           b: tuple[float, float], depart: np.ndarray, start: datetime, traffic: np.ndarray,
           pace: float) -> np.ndarray:
    road = rng.uniform(*world.road_factor, n)
    base = km(a, b) * road / world.speed_kmh * 60 + world.stop_overhead_minutes
    noise = np.exp(rng.normal(0, world.leg_sd, n) - world.leg_sd ** 2 / 2)
    local = start.astimezone(world.zone)
    hour = local.hour + local.minute / 60 + depart / 60
    hours = np.ones(n)
    for first, last, factor in world.rush_hours:
        hours = np.where((hour >= first) & (hour < last), factor, hours)
    return np.asarray(base * hours * traffic * pace * noise, dtype=float)


def _job(world: World, rng: np.random.Generator, n: int, visit: Visit, pace: float
         ) -> np.ndarray:
    job = visit.job
    minutes = job.planned_minutes * job.median_factor * pace * np.exp(rng.normal(0, job.sigma, n))
    overrun = rng.random(n) < world.overrun_probability
    minutes = minutes + np.where(overrun, rng.uniform(*world.overrun_minutes, n), 0.0)
    no_show = rng.random(n) < world.no_show_probability
    return np.asarray(np.where(no_show, 10.0, minutes), dtype=float)


def _beyond(draw: object, lower: float, n: int) -> np.ndarray:
    """Draw until every value exceeds `lower` (the part already seen to have passed)."""
    values: np.ndarray = draw()  # type: ignore[operator]
    for _ in range(50):
        short = values <= lower
        if not short.any():
            return values
        values = np.where(short, draw(), values)  # type: ignore[operator]
    return np.maximum(values, lower + 1.0)


def answer(sim: Simulation, tday: TechnicianDay, at: datetime, *, coverage: float = 0.9,
           samples: int = 2000, seed: int = 0) -> dict[str, OracleAnswer]:
    """Return the oracle's answer for every visit of the day not yet reached at `at`."""
    world = sim.world
    rng = np.random.default_rng(seed)
    job_pace, drive_pace = sim.technicians[tday.technician]
    traffic = np.exp(rng.normal(0, world.day_traffic_sd, samples))
    free = np.zeros(samples)  # minutes after `at` the technician can drive on
    place = tday.home
    started = tday.start <= at
    if not started:
        # The day has not begun: the shift starts at a usual time, never before now.
        usual = datetime.combine(tday.day, world.shift_start, tzinfo=world.zone)
        free = np.maximum(0.0, (usual - at) / MINUTE
                          + rng.normal(0, world.shift_start_sd_minutes, samples))
    found: dict[str, OracleAnswer] = {}
    tail = (1 - coverage) / 2
    pending = False
    for visit in tday.visits:
        if visit.cancelled_at is not None and visit.cancelled_at <= at:
            continue
        target = (visit.lat, visit.lon)
        if not pending and visit.arrival is not None and visit.arrival <= at:
            place = target
            assert visit.finish is not None
            if visit.finish > at:  # the job under way: it has run this long already
                elapsed = (at - visit.arrival) / MINUTE
                free = _beyond(lambda v=visit: _job(world, rng, samples, v, job_pace), elapsed,
                               samples) - elapsed
            else:
                free = np.zeros(samples)
            continue
        if not pending and started and visit.departed is not None and visit.departed <= at \
                and visit.cancelled_at is None:
            # On the road to it since `departed`.
            elapsed = (at - visit.departed) / MINUTE
            depart = np.full(samples, -elapsed)
            drive = _beyond(lambda p=place, t=target, d=depart: _drive(
                world, rng, samples, p, t, d, at, traffic, drive_pace), elapsed, samples)
            arrival = drive - elapsed
        else:
            arrival = free + _drive(world, rng, samples, place, target, free, at, traffic,
                                    drive_pace)
        pending = True
        arrival = np.maximum(arrival, (visit.window_start - at) / MINUTE)
        arrival = np.maximum(arrival, 0.0)
        low, median, high = np.quantile(arrival, [tail, 0.5, 1 - tail])
        found[visit.number] = OracleAnswer(at + timedelta(minutes=float(low)),
                                           at + timedelta(minutes=float(high)),
                                           at + timedelta(minutes=float(median)))
        free = arrival + _job(world, rng, samples, visit, job_pace)
        place = target
    return found


def width_minutes(a: OracleAnswer) -> float:
    """Return the window's width in minutes."""
    return (a.high - a.low) / MINUTE
