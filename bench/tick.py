"""Benchmark one scheduler tick: 1k / 10k / 100k active orders beside 1M finished ones.

The tick must cost what the active visits cost, whatever the number of finished orders.
Run: .venv/bin/python -m bench.tick [--finished 1000000] [--database sqlite|postgres|both]
PostgreSQL uses TECHBOT_TEST_DATABASE_URL's server (a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import make_url

from bot.pushes.decide import decide
from bot.services import Services
from bot.settings import load_settings
from storage.db import make_engine, make_session_factory, transaction
from storage.migrate import upgrade
from storage.models import Customer, Order, RouteStop, Technician, VisitHistory

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 11:00 in Berlin: no quiet hours
CHUNK = 20_000


def add_orders(services: Services, *, start: int, count: int, active: bool) -> None:
    """Bulk-insert orders: active ones booked today, finished ones completed long ago."""
    for first in range(start, start + count, CHUNK):
        ids = range(first, min(first + CHUNK, start + count))
        with transaction(services.sessions) as session:
            session.execute(insert(Customer), [
                {"id": i, "name": "K", "language": "de", "postal_code": "10115",
                 "created_at": NOW} for i in ids])
            session.execute(insert(Order), [
                {"id": i, "number": f"{i:09d}", "customer_id": i,
                 "status": "scheduled" if active else "completed",
                 "street": "Weg", "postal_code": "10115", "city": "Berlin",
                 "timezone": "Europe/Berlin", "region": "bench", "moves": 0,
                 "window_start": NOW + timedelta(hours=2) if active else NOW - timedelta(days=60),
                 "window_end": NOW + timedelta(hours=4) if active else NOW - timedelta(days=60),
                 "created_at": NOW, "updated_at": NOW if active else NOW - timedelta(days=60)}
                for i in ids])
            if not active:  # finished long ago: decided for the last time back then
                session.execute(update(Order).where(Order.id.in_(ids)).values(decide_after=None)
                                .execution_options(synchronize_session=False))


def tick_seconds(services: Services) -> tuple[float, float]:
    """Time the first tick (every active order due) and the next (only what fell due since)."""
    # A running service has fresh planner statistics (autovacuum); a bulk load does not yet.
    with services.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    started = time.perf_counter()
    decide(services, now=NOW)
    first = time.perf_counter() - started
    started = time.perf_counter()
    decide(services, now=NOW + timedelta(seconds=30))
    return first, time.perf_counter() - started


def add_routes(services: Services, *, technicians: int, history: int) -> None:
    """Give technicians a route of six visits today and `history` finished visits each."""
    with transaction(services.sessions) as session:
        session.execute(insert(Technician), [{"id": f"B{t}", "name": "T"}
                                             for t in range(technicians)])
        first = 50_000_000
        ids = range(first, first + technicians * 6)
        session.execute(insert(Customer), [
            {"id": i, "name": "K", "language": "de", "postal_code": "10115", "created_at": NOW}
            for i in ids])
        session.execute(insert(Order), [
            {"id": i, "number": f"R{i}", "customer_id": i, "status": "scheduled",
             "street": "Weg", "postal_code": "10115", "city": "Berlin", "timezone": "Europe/Berlin",
             "region": "bench", "moves": 0, "lat": 52.5 + (i % 50) / 500, "lon": 13.4,
             "technician_id": f"B{(i - first) // 6}",
             "window_start": NOW + timedelta(hours=(i - first) % 6),
             "window_end": NOW + timedelta(hours=(i - first) % 6 + 3),
             "created_at": NOW, "updated_at": NOW} for i in ids])
        session.execute(insert(RouteStop), [
            {"technician_id": f"B{(i - first) // 6}", "day": NOW.date(),
             "position": (i - first) % 6 + 1, "order_id": i, "planned_minutes": 60} for i in ids])
        session.execute(insert(VisitHistory), [
            {"order_id": 10_000_000 + t * history + k, "technician_id": f"B{t}",
             "day": (NOW - timedelta(days=1 + k // 6)).date(), "planned_minutes": 60,
             "duration_minutes": 50 + (k * 7) % 40, "drive_minutes": 15 + (k * 5) % 20,
             "drive_km": 3 + k % 5, "drive_hour": 8 + k % 8, "finished_at": NOW}
            for t in range(technicians) for k in range(history)])


def bench(url: object, finished: int, label: str) -> list[str]:
    """Grow the active orders in two databases, one beside `finished` finished orders."""
    worlds = []
    for with_finished in (False, True):
        engine = make_engine(url() if callable(url) else str(url))
        upgrade(engine)
        services = Services(load_settings(), engine, make_session_factory(engine),
                            clock=lambda: NOW)
        if with_finished:
            add_orders(services, start=10_000_000, count=finished, active=False)
        worlds.append(services)
    lines, have = [], 0
    for active in (1_000, 10_000, 100_000):
        row = []
        for services in worlds:
            add_orders(services, start=have + 1, count=active - have, active=True)
            row.append(tick_seconds(services))
        have = active
        lines.append(f"| {label} | {active:,} | {row[0][0] * 1000:.0f} / "
                     f"{row[0][1] * 1000:.0f} | {finished:,} | {row[1][0] * 1000:.0f} / "
                     f"{row[1][1] * 1000:.0f} |")
        print(lines[-1], flush=True)
    for services in worlds:
        services.engine.dispose()
    return lines


def routes(url: object, finished: int, label: str) -> list[str]:
    """Time ticks that predict routes: the learned model's cost per technician."""
    lines = []
    for technicians in (100, 1_000):
        engine = make_engine(url() if callable(url) else str(url))
        upgrade(engine)
        services = Services(load_settings(), engine, make_session_factory(engine),
                            clock=lambda: NOW)
        add_orders(services, start=10_000_000, count=finished, active=False)
        add_routes(services, technicians=technicians, history=60)
        first, steady = tick_seconds(services)
        lines.append(f"| {label} | {technicians:,} technicians × 6 visits, 60 finished each, "
                     f"{finished:,} finished orders | {first * 1000:.0f} | {steady * 1000:.0f} "
                     f"| {first * 1000 / technicians:.1f} |")
        print(lines[-1], flush=True)
        engine.dispose()
    return lines


def replicas(url: object, active: int, count: int = 3) -> str:
    """Decide one first tick of `active` due orders by one replica, then by `count` at once."""
    import threading

    import bot.pushes.decide as deciding

    taken: dict[int, int] = {}
    original = deciding.orders_due

    def counted(session: object, **kwargs: object) -> list[Order]:
        found = original(session, **kwargs)  # type: ignore[arg-type]
        ident = threading.get_ident()
        taken[ident] = taken.get(ident, 0) + len(found)
        return found

    def world() -> Services:
        engine = make_engine(url() if callable(url) else str(url))
        upgrade(engine)
        services = Services(load_settings(), engine, make_session_factory(engine),
                            clock=lambda: NOW)
        add_orders(services, start=1, count=active, active=True)
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
        return services

    deciding.orders_due = counted  # type: ignore[assignment]
    try:
        alone = world()
        started = time.perf_counter()
        decide(alone, now=NOW)
        one = time.perf_counter() - started
        alone.engine.dispose()
        shared = world()
        # Each replica has its own engine (its own connections), as separate processes do.
        address = shared.engine.url.render_as_string(hide_password=False)
        engines = [shared.engine] + [make_engine(address) for _ in range(count - 1)]
        replicas_ = [Services(shared.settings, engine, make_session_factory(engine),
                              clock=lambda: NOW) for engine in engines]
        busy: list[float] = []
        gate = threading.Barrier(count)
        taken.clear()

        def run(services: Services) -> None:
            gate.wait()
            began = time.perf_counter()
            decide(services, now=NOW)
            busy.append(time.perf_counter() - began)

        threads = [threading.Thread(target=run, args=(s,)) for s in replicas_]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        for services in replicas_:
            services.engine.dispose()
    finally:
        deciding.orders_due = original  # type: ignore[assignment]
    shares = " / ".join(f"{n:,}" for n in sorted(taken.values(), reverse=True))
    line = (f"| {active:,} | {one * 1000:.0f} | {count} | {shares} (sum {sum(taken.values()):,}) "
            f"| {wall * 1000:.0f} | {sum(busy) * 1000:.0f} |")
    print(line, flush=True)
    return line


def sqlite_url() -> str:
    return f"sqlite:///{tempfile.mkdtemp(prefix='techbot-tick-')}/tick.sqlite3"


def postgres_url() -> str:
    base = os.environ.get("TECHBOT_TEST_DATABASE_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"techbot_tick_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    CREATED.append((base, name))
    return make_url(base).set(database=name).render_as_string(hide_password=False)


CREATED: list[tuple[str, str]] = []


def main() -> None:
    """Parse the arguments, run on the chosen databases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--replicas-only", action="store_true",
                        help="only the replicas table (PostgreSQL)")
    args = parser.parse_args()
    print(f"# Tick cost, {os.cpu_count()} cores\n")
    if args.replicas_only:
        try:
            replicas_table()
        finally:
            drop_created()
        return
    databases = [(u, n) for u, n, k in ((sqlite_url, "SQLite", "sqlite"),
                                        (postgres_url, "PostgreSQL", "postgres"))
                 if args.database in (k, "both")]
    print("Visits without a route (first tick: every order due / next tick: what fell due)\n")
    print("| database | active orders | tick ms first / next (no finished) | finished orders | "
          "tick ms first / next (with finished) |")
    print("|---|---|---|---|---|")
    try:
        for url, name in databases:
            bench(url, args.finished, name)
        print("\nRoutes of today predicted by the learned model (600 samples a route)\n")
        print("| database | world | first tick ms | next tick ms | ms per technician |")
        print("|---|---|---|---|---|")
        for url, name in databases:
            routes(url, args.finished, name)
        if args.database in ("postgres", "both"):
            replicas_table()
    finally:
        drop_created()


def replicas_table() -> None:
    """Print the replicas rows: the tick's work split, not multiplied."""
    print("\nReplicas on one PostgreSQL, each deciding the first tick at once (threads "
          "with their own connections; the orders are split by FOR UPDATE SKIP LOCKED)\n")
    print("| due orders | 1 replica ms | replicas | orders decided by each | wall ms | "
          "summed busy ms |")
    print("|---|---|---|---|---|---|")
    for active in (10_000, 100_000):
        replicas(postgres_url, active)


def drop_created() -> None:
    """Drop the scratch databases the run created."""
    for base, name in CREATED:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
