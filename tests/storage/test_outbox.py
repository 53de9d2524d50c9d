"""The outbox on SQLite and PostgreSQL: decided once, claimed once, leases, retries."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from storage.models import Notification
from storage.outbox import claim_due, enqueue
from tests.conftest import NOW
from tests.factories import make_order

LEASE = timedelta(seconds=60)


def test_deciding_the_same_push_twice_inserts_one_row(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        order = make_order(session)
        assert enqueue(session, order_id=order.id, kind="reminder", dedupe_key="r:1",
                       payload={}, now=NOW)
        assert not enqueue(session, order_id=order.id, kind="reminder", dedupe_key="r:1",
                           payload={}, now=NOW)
        assert session.query(Notification).count() == 1


def test_two_workers_never_claim_the_same_row(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        order = make_order(session)
        for i in range(200):
            enqueue(session, order_id=order.id, kind="reminder", dedupe_key=f"k{i}", payload={},
                    now=NOW)
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def worker(name: str) -> None:
        while True:
            with transaction(sessions) as session:
                rows = claim_due(session, worker=name, now=NOW, limit=7, lease=LEASE)
                claimed[name] += [r.id for r in rows]
            if not rows:
                return

    threads = [threading.Thread(target=worker, args=(n,)) for n in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(claimed["a"]) + len(claimed["b"]) == 200
    assert not set(claimed["a"]) & set(claimed["b"])


def test_a_dead_workers_claim_is_released_after_its_lease(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        order = make_order(session)
        enqueue(session, order_id=order.id, kind="reminder", dedupe_key="x", payload={}, now=NOW)
    with transaction(sessions) as session:
        assert len(claim_due(session, worker="dead", now=NOW, limit=5, lease=LEASE)) == 1
    with transaction(sessions) as session:
        assert claim_due(session, worker="alive", now=NOW + timedelta(seconds=30), limit=5,
                         lease=LEASE) == []
        again = claim_due(session, worker="alive", now=NOW + timedelta(seconds=61), limit=5,
                          lease=LEASE)
        assert [r.claimed_by for r in again] == ["alive"]
