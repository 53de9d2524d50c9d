"""Demo data: technicians, a dozen orders in five languages, routes and two weeks of slots."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.chats import create_link_token
from storage.models import Customer, Order, OrderStatus, VisitHistory
from storage.orders import AddressFields, CustomerFields, upsert_order
from storage.slots import SlotFields, put_capacity
from storage.technicians import StopFields, set_route, upsert_technician

ZONE = ZoneInfo("Europe/Berlin")
WINDOWS = ((9, 11), (11, 13), (13, 15), (15, 17))
REGIONS = ("berlin-mitte", "berlin-neukoelln")
TECHNICIANS = (
    ("T-100", "Jonas Becker", "Kranich", "berlin-mitte"),
    ("T-200", "Ayşe Demir", "Lavendel", "berlin-neukoelln"),
    ("T-300", "Dmitri Volkov", "Bernstein", "berlin-mitte"),
)
# number, customer, language, street, postal code, technician, day offset, window, minutes
ORDERS = (
    ("40000001", "Katrin Schulz", "de", "Torstraße 12", "10119", "T-100", 1, 0, 60),
    ("40000002", "Emily Carter", "en", "Invalidenstraße 44", "10115", "T-100", 1, 0, 45),
    ("40000003", "Mehmet Yılmaz", "tr", "Sonnenallee 88", "12045", "T-200", 1, 1, 60),
    ("40000004", "Olga Smirnova", "ru", "Karl-Marx-Straße 150", "12043", "T-200", 1, 1, 50),
    ("40000005", "Rania Haddad", "ar", "Hermannstraße 20", "12049", "T-200", 1, 2, 40),
    ("40000006", "Thomas Wagner", "de", "Brunnenstraße 7", "10119", "T-300", 0, 1, 60),
    ("40000007", "James Miller", "en", "Chausseestraße 101", "10115", "T-300", 0, 1, 45),
    ("40000008", "Zeynep Kaya", "tr", "Weserstraße 33", "12045", "T-200", 0, 2, 60),
    ("40000009", "Ivan Petrov", "ru", "Linienstraße 60", "10119", "T-300", 0, 2, 30),
    ("40000010", "Omar Khalil", "ar", "Flughafenstraße 5", "12053", "T-200", 0, 3, 45),
    ("40000011", "Anna Fischer", "de", "Ackerstraße 19", "10115", "T-100", 0, 3, 60),
    ("40000012", "Sophie Brown", "en", "Reuterstraße 71", "12053", "T-200", 2, 0, 60),
)
REGION_OF_TECHNICIAN = {t[0]: t[3] for t in TECHNICIANS}
HISTORY_DAYS = 20  # working days of finished visits per technician, for the arrival model
# Each technician's pace: their jobs take this share of the planned minutes, typically.
PACE = {"T-100": 1.05, "T-200": 0.95, "T-300": 1.15}


@dataclass
class DemoResult:
    """What the seed loaded, with a fresh link token per order."""

    orders: list[tuple[str, str, str]] = field(default_factory=list)  # number, language, token
    technicians: int = 0
    slots: int = 0
    history: list[int] = field(default_factory=list)  # past visits' order ids, to learn from


def _local(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ZONE)


def _window(day: date, index: int) -> tuple[datetime, datetime]:
    start, end = WINDOWS[index]
    return _local(day, start), _local(day, end)


def seed_demo(session: Session, *, now: datetime, link_ttl: timedelta) -> DemoResult:
    """Load the demo data; running it again refreshes the same records."""
    result = DemoResult()
    today = now.astimezone(ZONE).date()
    for technician_id, name, code_word, _region in TECHNICIANS:
        upsert_technician(session, technician_id=technician_id, name=name, code_word=code_word)
        result.technicians += 1
    for offset in range(15):
        day = today + timedelta(days=offset)
        if day.weekday() == 6:  # no visits on Sundays
            continue
        for region in REGIONS:
            # The first window of every third day is fully booked, so offers have gaps to skip.
            slots = [SlotFields(*_window(day, i), capacity=0 if (offset % 3 == 2 and i == 0)
                                else 3) for i in range(len(WINDOWS))]
            result.slots += len(put_capacity(session, region=region, day=day, slots=slots))
    routes: dict[tuple[str, date], list[StopFields]] = {}
    for number, customer, language, street, postal, tech, day_offset, window, minutes in ORDERS:
        day = today + timedelta(days=day_offset)
        if day.weekday() == 6:
            day += timedelta(days=1)
        order, _ = upsert_order(
            session,
            number=number,
            customer=CustomerFields(name=customer, postal_code=postal, language=language,
                                    phone=None),
            address=AddressFields(street=street, postal_code=postal, city="Berlin"),
            window=_window(day, window),
            technician_id=tech,
            region=REGION_OF_TECHNICIAN[tech],
            timezone="Europe/Berlin",
            monthly_fee_cents=4995,
            now=now,
        )
        routes.setdefault((tech, day), []).append(StopFields(number, minutes))
        token = create_link_token(session, order_id=order.id, ttl=link_ttl, now=now)
        result.orders.append((number, language, token))
    for (tech, day), stops in routes.items():
        set_route(session, technician_id=tech, day=day, stops=stops)
    result.history = seed_history(session, today=today, now=now)
    return result


def _past_working_days(today: date, count: int) -> list[date]:
    days: list[date] = []
    day = today
    while len(days) < count:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def seed_history(session: Session, *, today: date, now: datetime) -> list[int]:
    """Give each demo technician past finished visits (seeded, so every demo is the same).

    Each past day is a route of four booked two-hour windows; the technician sets off around
    08:20 (give or take a quarter of an hour), waits when early, and works at their own pace.
    Returns the ids of the past orders (none when seeded before: history is history).
    """
    if session.scalar(select(Order.id).where(Order.number.like("49%")).limit(1)) is not None:
        return []
    ids: list[int] = []
    past = Customer(name="Frühere Kundschaft", postal_code="10115", language="de", created_at=now)
    session.add(past)
    for technician_id, _name, _code, region in TECHNICIANS:
        rng = random.Random(technician_id)  # noqa: S311 (demo data, not a secret)
        for day in _past_working_days(today, HISTORY_DAYS):
            clock = _local(day, 8) + timedelta(minutes=rng.gauss(20, 15))
            start_minute = clock.hour * 60 + clock.minute
            route: list[StopFields] = []
            for position, (window_start, window_end) in enumerate(
                    _window(day, i) for i in range(len(WINDOWS))):
                planned = rng.choice((30, 45, 60, 90))
                drive_hour = clock.hour
                if position == 0:
                    drive = km = None
                    clock += timedelta(minutes=max(10.0, rng.gauss(30, 12)))  # from home
                else:
                    km = rng.uniform(1.5, 8.0)
                    drive = max(4.0, (6 + 3.4 * km) * rng.lognormvariate(0, 0.3))
                    clock += timedelta(minutes=drive)
                if clock < window_start:  # early: waits for the window (that drive says little)
                    drive, clock = None, window_start
                duration = planned * PACE[technician_id] * rng.lognormvariate(0, 0.3)
                arrived, finished = clock, clock + timedelta(minutes=duration)
                number = f"49{len(ids):06d}"
                order = Order(number=number, customer=past, status=OrderStatus.COMPLETED,
                              technician_id=technician_id, region=region,
                              timezone="Europe/Berlin", window_start=window_start,
                              window_end=window_end, arrived_at=arrived, finished_at=finished,
                              created_at=now, updated_at=now, street="Vergangene Straße 1",
                              postal_code="10115", city="Berlin")
                session.add(order)
                session.flush()
                session.add(VisitHistory(
                    order_id=order.id, technician_id=technician_id, day=day, job_type=None,
                    planned_minutes=planned, duration_minutes=duration, drive_minutes=drive,
                    drive_km=km, drive_hour=drive_hour if drive else None,
                    start_minute=start_minute if position == 0 else None,
                    eta_error_minutes=None, eta_horizon_minutes=None, finished_at=finished))
                route.append(StopFields(number, planned))
                ids.append(order.id)
                clock = finished
            set_route(session, technician_id=technician_id, day=day, stops=route)
    # Finished long ago: nothing about them is left to decide.
    session.execute(update(Order).where(Order.id.in_(ids)).values(decide_after=None)
                    .execution_options(synchronize_session=False))
    session.flush()
    return ids
