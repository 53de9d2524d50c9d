"""A simulated world of technician days: its parameters in one place, dispatch's log out.

The world is what the arrival prediction is measured against, never what it is built from:
`bench/predict.py` replays the log through `techbot replay` and scores what customers were
told against the true arrivals written beside it. Vary the parameters (WORLDS) before trusting
a figure; the acceptance world is another one again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np


@dataclass(frozen=True)
class JobType:
    """A kind of visit: what dispatch plans for it and how long it really takes."""

    name: str
    planned_minutes: int
    median_factor: float  # true median duration ÷ planned minutes
    sigma: float  # lognormal spread of the duration
    share: float  # of all visits


@dataclass(frozen=True)
class World:
    """Every parameter of the simulated operator, its technicians, the city and the traffic."""

    seed: int = 1
    technicians: int = 30
    first_day: date = date(2026, 3, 2)  # a Monday
    days: int = 20  # working days (Monday to Saturday)
    stops_per_day: tuple[int, int] = (4, 7)
    job_types: tuple[JobType, ...] = (
        JobType("install", 90, 1.00, 0.30, 0.35),
        JobType("repair", 60, 1.05, 0.40, 0.40),
        JobType("router", 45, 0.90, 0.30, 0.25),
    )
    send_job_type: bool = False  # dispatch tells the bot the kind of visit
    technician_sd: float = 0.15  # a technician's stable pace at jobs (lognormal sd)
    technician_drive_sd: float = 0.10  # and behind the wheel
    overrun_probability: float = 0.05  # a job that runs an hour or two longer
    overrun_minutes: tuple[float, float] = (60, 120)
    city_km: float = 14.0  # visits lie uniformly in a square of this side
    with_coordinates: bool = True  # dispatch sends lat/lon of each address
    road_factor: tuple[float, float] = (1.25, 1.6)  # road ÷ straight-line distance, per leg
    speed_kmh: float = 24.0
    stop_overhead_minutes: float = 4.0  # parking, stairs
    rush_hours: tuple[tuple[float, float, float], ...] = ((7.5, 9.5, 1.35), (16.0, 18.5, 1.3))
    day_traffic_sd: float = 0.15  # one factor per day for the whole city
    leg_sd: float = 0.25  # each drive's own noise
    shift_start: time = time(7, 40)
    shift_start_sd_minutes: float = 8.0
    window_hours: int = 3  # the booked window's length
    dispatch_drive_minutes: float = 30.0  # what dispatch plans per drive
    position_every_minutes: float | None = 2.0
    days_without_positions: float = 0.1  # share of technician-days whose app sends none
    eta_probability: float = 0.3  # dispatch sends an ETA when the technician sets off
    eta_sd_minutes: float = 6.0
    cancel_probability: float = 0.03  # the operator cancels a visit during the day
    no_show_probability: float = 0.02
    timezone: str = "Europe/Berlin"
    languages: tuple[str, ...] = ("de", "en", "tr", "ru", "ar")

    @property
    def zone(self) -> ZoneInfo:
        """Return the world's time zone."""
        return ZoneInfo(self.timezone)


# The world tuned on, and others that nothing was tuned on.
WORLDS: dict[str, World] = {
    "base": World(),
    "slow-city": World(seed=7, speed_kmh=18, day_traffic_sd=0.25, leg_sd=0.35,
                       overrun_probability=0.08, technician_sd=0.22, window_hours=4,
                       position_every_minutes=5.0, days_without_positions=0.3,
                       eta_probability=0.0, stops_per_day=(4, 7)),
    "tight": World(seed=11, window_hours=2, technician_sd=0.10, leg_sd=0.2,
                   job_types=(JobType("install", 120, 1.1, 0.25, 0.5),
                              JobType("repair", 45, 0.95, 0.5, 0.5)),
                   send_job_type=True, with_coordinates=False, eta_probability=0.6,
                   cancel_probability=0.06),
    # Written down before any model saw it (session of 2026-12-06), after the delay rule was
    # chosen on the others: a rural operator with long drives, few long visits, slow starters.
    "sprawl": World(seed=23, city_km=35.0, speed_kmh=40.0, stops_per_day=(3, 5),
                    job_types=(JobType("install", 150, 0.95, 0.35, 0.4),
                               JobType("repair", 60, 1.15, 0.45, 0.6)),
                    technician_sd=0.2, technician_drive_sd=0.15, overrun_probability=0.03,
                    day_traffic_sd=0.1, leg_sd=0.3, shift_start=time(8, 0),
                    shift_start_sd_minutes=15.0, window_hours=3, eta_probability=0.2,
                    position_every_minutes=1.0, days_without_positions=0.5,
                    cancel_probability=0.02, no_show_probability=0.04),
}


@dataclass
class Visit:
    """One order of one technician's day, with what really happened."""

    number: str
    technician: str
    day: date
    position: int  # 1-based place in the route
    job: JobType
    lat: float
    lon: float
    planned_arrival: datetime
    window_start: datetime
    window_end: datetime
    language: str
    cancelled_at: datetime | None = None
    no_show: bool = False
    departed: datetime | None = None
    arrival: datetime | None = None
    finish: datetime | None = None
    eta: tuple[datetime, datetime] | None = None  # (told at, eta)


@dataclass
class TechnicianDay:
    """One technician's route of a day and the truth of it."""

    technician: str
    day: date
    start: datetime
    home: tuple[float, float]
    visits: list[Visit]
    traffic: float  # the day's city-wide factor
    positions: bool
    track: list[tuple[datetime, float, float]] = field(default_factory=list)


@dataclass
class Simulation:
    """The whole simulated period: every technician-day, the log and the truth."""

    world: World
    technicians: dict[str, tuple[float, float]]  # id -> (job pace, drive pace)
    days: list[TechnicianDay]

    def visits(self) -> Iterator[Visit]:
        """Yield every visit of every day."""
        for day in self.days:
            yield from day.visits


def working_days(world: World) -> list[date]:
    """Return the world's working days (no Sundays)."""
    days, day = [], world.first_day
    while len(days) < world.days:
        if day.weekday() != 6:
            days.append(day)
        day += timedelta(days=1)
    return days


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the straight-line distance of two points in km (equirectangular, fine in a city)."""
    dlat = (b[0] - a[0]) * 111.2
    dlon = (b[1] - a[1]) * 111.2 * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(dlat, dlon)


def rush(world: World, moment: datetime) -> float:
    """Return the time-of-day multiplier of a drive's duration."""
    local = moment.astimezone(world.zone)
    hour = local.hour + local.minute / 60
    for start, end, factor in world.rush_hours:
        if start <= hour < end:
            return factor
    return 1.0


def drive_minutes(world: World, rng: np.random.Generator, a: tuple[float, float],
                  b: tuple[float, float], *, depart: datetime, traffic: float,
                  pace: float) -> float:
    """Draw one drive's true duration."""
    road = rng.uniform(*world.road_factor)
    base = km(a, b) * road / world.speed_kmh * 60 + world.stop_overhead_minutes
    noise = math.exp(rng.normal(0, world.leg_sd) - world.leg_sd ** 2 / 2)
    return base * rush(world, depart) * traffic * pace * noise


def job_minutes(world: World, rng: np.random.Generator, job: JobType, pace: float) -> float:
    """Draw one job's true duration (now and then one that runs an hour or two longer)."""
    minutes = job.planned_minutes * job.median_factor * pace * math.exp(rng.normal(0, job.sigma))
    if rng.random() < world.overrun_probability:
        minutes += rng.uniform(*world.overrun_minutes)
    return minutes


def _point(world: World, rng: np.random.Generator) -> tuple[float, float]:
    lat0, lon0 = 52.52, 13.40
    dy, dx = rng.uniform(-world.city_km / 2, world.city_km / 2, 2)
    return lat0 + dy / 111.2, lon0 + dx / (111.2 * math.cos(math.radians(lat0)))


def simulate(world: World) -> Simulation:
    """Play every technician's every working day of the world."""
    rng = np.random.default_rng(world.seed)
    technicians = {f"T{i:03d}": (math.exp(rng.normal(0, world.technician_sd)),
                                 math.exp(rng.normal(0, world.technician_drive_sd)))
                   for i in range(1, world.technicians + 1)}
    homes = {t: _point(world, rng) for t in technicians}
    shares = np.array([j.share for j in world.job_types])
    shares = shares / shares.sum()
    days = []
    serial = 50_000_000
    for day in working_days(world):
        traffic = math.exp(rng.normal(0, world.day_traffic_sd))
        for technician, (job_pace, drive_pace) in technicians.items():
            count = int(rng.integers(world.stops_per_day[0], world.stops_per_day[1] + 1))
            start = datetime.combine(day, world.shift_start, tzinfo=world.zone) + timedelta(
                minutes=float(rng.normal(0, world.shift_start_sd_minutes)))
            visits = []
            planned = datetime.combine(day, time(8, 0), tzinfo=world.zone)
            for position in range(1, count + 1):
                serial += 1
                job = world.job_types[int(rng.choice(len(world.job_types), p=shares))]
                planned += timedelta(minutes=world.dispatch_drive_minutes)
                window_start = _window_start(world, day, planned)
                lat, lon = _point(world, rng)
                visits.append(Visit(
                    number=str(serial), technician=technician, day=day, position=position,
                    job=job, lat=lat, lon=lon, planned_arrival=planned,
                    window_start=window_start,
                    window_end=window_start + timedelta(hours=world.window_hours),
                    language=world.languages[serial % len(world.languages)],
                    no_show=bool(rng.random() < world.no_show_probability)))
                planned = max(planned, window_start) + timedelta(minutes=job.planned_minutes)
            tday = TechnicianDay(technician, day, start, homes[technician], visits, traffic,
                                 positions=world.position_every_minutes is not None
                                 and bool(rng.random() >= world.days_without_positions))
            _play(world, rng, tday, job_pace, drive_pace)
            days.append(tday)
    return Simulation(world, technicians, days)


def _window_start(world: World, day: date, planned: datetime) -> datetime:
    """Book the window that starts on the hour, an hour or so before the planned arrival."""
    earliest = datetime.combine(day, time(8, 0), tzinfo=world.zone)
    hour = (planned - timedelta(minutes=60)).replace(minute=0, second=0, microsecond=0)
    return max(earliest, hour)


def _play(world: World, rng: np.random.Generator, tday: TechnicianDay, job_pace: float,
          drive_pace: float) -> None:
    """Drive the day: cancellations, drives, waiting for windows, jobs, no-shows, the track."""
    cancelled = {v.number for v in tday.visits if rng.random() < world.cancel_probability}
    clock, place = tday.start, tday.home
    for visit in tday.visits:
        if visit.number in cancelled:
            # Cancelled by the operator before the technician set off for it.
            earliest = datetime.combine(tday.day, time(7, 0), tzinfo=world.zone)
            latest = max(earliest + timedelta(minutes=1), clock)
            visit.cancelled_at = earliest + (latest - earliest) * float(rng.random())
            continue
        visit.departed = clock
        drive = drive_minutes(world, rng, place, (visit.lat, visit.lon), depart=clock,
                              traffic=tday.traffic, pace=drive_pace)
        reach = clock + timedelta(minutes=drive)
        if tday.positions:
            _track(world, tday, clock, reach, place, (visit.lat, visit.lon))
        visit.arrival = max(reach, visit.window_start)  # nobody rings before the window opens
        if rng.random() < world.eta_probability:
            told = visit.arrival + timedelta(minutes=float(rng.normal(0, world.eta_sd_minutes)))
            visit.eta = (clock, max(told, clock + timedelta(minutes=1)))
        stay = 10.0 if visit.no_show else job_minutes(world, rng, visit.job, job_pace)
        visit.finish = visit.arrival + timedelta(minutes=stay)
        if tday.positions:
            _track(world, tday, visit.arrival, visit.finish, (visit.lat, visit.lon),
                   (visit.lat, visit.lon))
        clock, place = visit.finish, (visit.lat, visit.lon)


def _track(world: World, tday: TechnicianDay, start: datetime, end: datetime,
           a: tuple[float, float], b: tuple[float, float]) -> None:
    assert world.position_every_minutes is not None
    step = timedelta(minutes=world.position_every_minutes)
    moment = start
    while moment < end:
        share = (moment - start) / (end - start) if end > start else 1.0
        tday.track.append((moment, a[0] + (b[0] - a[0]) * share, a[1] + (b[1] - a[1]) * share))
        moment += step


# The dispatch log --------------------------------------------------------------------------


def _call(at: datetime, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"at": at.isoformat(timespec="seconds"), "method": method, "path": path,
            "body": body}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def dispatch_log(sim: Simulation) -> list[dict[str, Any]]:
    """Return every ops-API call dispatch makes in the world, in time order."""
    world = sim.world
    calls = []
    begin = datetime.combine(world.first_day - timedelta(days=4), time(9, 0), tzinfo=world.zone)
    for technician in sim.technicians:
        calls.append(_call(begin, "PUT", f"/api/v1/technicians/{technician}",
                           {"name": f"Technician {technician}"}))
    for day in working_days(world):
        slots = [{"start": _iso(datetime.combine(day, time(h), tzinfo=world.zone)),
                  "end": _iso(datetime.combine(day, time(h + world.window_hours),
                                               tzinfo=world.zone)), "capacity": 40}
                 for h in range(8, 18 - world.window_hours + 1)]
        calls.append(_call(begin, "PUT", f"/api/v1/capacity/city/{day.isoformat()}",
                           {"slots": slots}))
    for tday in sim.days:
        booked_at = datetime.combine(tday.day - timedelta(days=3), time(10, 0), tzinfo=world.zone)
        evening = datetime.combine(tday.day - timedelta(days=1), time(17, 0), tzinfo=world.zone)
        for visit in tday.visits:
            address: dict[str, Any] = {"street": f"Straße {visit.number[-3:]}",
                                       "postal_code": "10115", "city": "Berlin"}
            if world.with_coordinates:
                address |= {"lat": round(visit.lat, 6), "lon": round(visit.lon, 6)}
            body: dict[str, Any] = {
                "customer": {"name": f"Kunde {visit.number}", "postal_code": "10115",
                             "language": visit.language},
                "address": address,
                "appointment": {"start": _iso(visit.window_start), "end": _iso(visit.window_end)},
                "technician_id": visit.technician, "region": "city", "timezone": world.timezone}
            if world.send_job_type:
                body["job_type"] = visit.job.name
            calls.append(_call(booked_at, "PUT", f"/api/v1/orders/{visit.number}", body))
        calls.append(_call(evening, "PUT",
                           f"/api/v1/technicians/{tday.technician}/route/{tday.day.isoformat()}",
                           {"stops": [{"order": v.number, "planned_minutes": v.job.planned_minutes}
                                      for v in tday.visits]}))
        calls += _day_calls(tday)
    calls.sort(key=lambda c: datetime.fromisoformat(c["at"]))
    return calls


def _day_calls(tday: TechnicianDay) -> list[dict[str, Any]]:
    calls = []
    events = "/api/v1/orders/{}/events"
    for visit in tday.visits:
        path = events.format(visit.number)
        if visit.cancelled_at is not None:
            calls.append(_call(visit.cancelled_at, "POST", path,
                               {"type": "cancelled", "reason": "Material fehlt"}))
            continue
        assert visit.departed and visit.arrival and visit.finish
        calls.append(_call(visit.departed, "POST", path, {"type": "en_route"}))
        if visit.eta is not None:
            calls.append(_call(visit.eta[0], "POST", path,
                               {"type": "eta", "eta": _iso(visit.eta[1])}))
        if visit.no_show:
            calls.append(_call(visit.finish, "POST", path, {"type": "no_show", "at":
                                                             _iso(visit.finish)}))
            continue
        calls.append(_call(visit.arrival, "POST", path, {"type": "arrived"}))
        calls.append(_call(visit.finish, "POST", path, {"type": "completed"}))
    for moment, lat, lon in tday.track:
        calls.append(_call(moment, "POST", f"/api/v1/technicians/{tday.technician}/position",
                           {"lat": round(lat, 6), "lon": round(lon, 6), "at": _iso(moment)}))
    return calls


def truth(sim: Simulation) -> dict[str, dict[str, Any]]:
    """Return what really happened to every order: its window, its arrival, its end."""
    return {v.number: {"technician": v.technician, "day": v.day.isoformat(),
                       "window": [_iso(v.window_start), _iso(v.window_end)],
                       "arrival": _iso(v.arrival) if v.arrival and not v.no_show else None,
                       "cancelled": v.cancelled_at is not None, "no_show": v.no_show}
            for v in sim.visits()}


def write(sim: Simulation, folder: Path) -> tuple[Path, Path]:
    """Write the log (JSON lines) and the truth (JSON) of a simulation into the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    log, facts = folder / "dispatch.jsonl", folder / "truth.json"
    with log.open("w", encoding="utf-8") as out:
        for call in dispatch_log(sim):
            out.write(json.dumps(call, ensure_ascii=False) + "\n")
    facts.write_text(json.dumps({"world": _world_json(sim.world), "orders": truth(sim)}),
                     encoding="utf-8")
    return log, facts


def _world_json(world: World) -> dict[str, Any]:
    data = asdict(world)
    data["first_day"] = world.first_day.isoformat()
    data["shift_start"] = world.shift_start.isoformat()
    return data


def smaller(world: World, *, technicians: int, days: int) -> World:
    """Return the same world with fewer technicians and days (for tests and quick looks)."""
    return replace(world, technicians=technicians, days=days)
