"""Slot capacity and the atomic booking, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from storage.errors import SlotNotFound, SlotTaken
from storage.models import CapacitySlot, Order
from storage.orders import appointment_history
from storage.slots import SlotFields, book_slot, free_slots, put_capacity
from tests.conftest import NOW
from tests.factories import make_order, make_slots


def test_booking_moves_the_window_frees_the_old_slot_and_keeps_history(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        first, second = make_slots(session, hours=(8, 10), capacity=2)
        order = make_order(session, window=(first.start, first.end))
        assert session.get(CapacitySlot, first.id).booked == 1  # the operator's window counts
        order_id, first_id, second_id = order.id, first.id, second.id
    with transaction(sessions) as session:
        book_slot(session, order_id=order_id, slot_id=second_id, changed_by="customer",
                  reason="chat", now=NOW)
    with transaction(sessions) as session:
        order = session.get(Order, order_id)
        assert (order.window_start, order.slot_id, order.moves) == (
            session.get(CapacitySlot, second_id).start, second_id, 1)
        assert session.get(CapacitySlot, first_id).booked == 0
        assert session.get(CapacitySlot, second_id).booked == 1
        history = appointment_history(session, order_id=order_id)
        last = history[-1]
        assert (last.changed_by, last.new_start) == ("customer", order.window_start)
        assert history[-1].old_start == session.get(CapacitySlot, first_id).start


def test_a_full_slot_raises_slot_taken_and_changes_nothing(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        slot, full = make_slots(session, hours=(8, 10), capacity=1)
        holder = make_order(session, window=(full.start, full.end))
        order = make_order(session, window=(slot.start, slot.end))
        ids = order.id, slot.id, full.id
        assert holder.slot_id == full.id
    with pytest.raises(SlotTaken), transaction(sessions) as session:
        book_slot(session, order_id=ids[0], slot_id=ids[2], changed_by="customer", reason=None,
                  now=NOW)
    with transaction(sessions) as session:
        assert session.get(Order, ids[0]).slot_id == ids[1]
        assert session.get(CapacitySlot, ids[1]).booked == 1
        assert session.get(CapacitySlot, ids[2]).booked == 1


def test_slot_taken_inside_a_longer_transaction_rolls_back_only_the_booking(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        slot, full = make_slots(session, hours=(8, 10), capacity=1)
        make_order(session, window=(full.start, full.end))
        order = make_order(session, window=(slot.start, slot.end))
        with pytest.raises(SlotTaken):
            book_slot(session, order_id=order.id, slot_id=full.id, changed_by="customer",
                      reason=None, now=NOW)
        assert session.get(CapacitySlot, slot.id).booked == 1  # the savepoint undid the release


def test_past_and_unknown_slots_are_refused(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        (slot,) = make_slots(session, hours=(8,), day=(NOW - timedelta(days=1)).date())
        order = make_order(session)
        with pytest.raises(SlotTaken):
            book_slot(session, order_id=order.id, slot_id=slot.id, changed_by="customer",
                      reason=None, now=NOW)
        with pytest.raises(SlotNotFound):
            book_slot(session, order_id=order.id, slot_id=999_999, changed_by="customer",
                      reason=None, now=NOW)


def test_free_slots_skips_full_and_past_windows_in_order(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        slots = make_slots(session, hours=(8, 10, 12), capacity=1)
        make_order(session, window=(slots[1].start, slots[1].end))
        found = free_slots(session, region="berlin", after=NOW, until=NOW + timedelta(days=14),
                           limit=5)
        assert [s.id for s in found] == [slots[0].id, slots[2].id]
        assert free_slots(session, region="elsewhere", after=NOW,
                          until=NOW + timedelta(days=14), limit=5) == []


def test_put_capacity_is_idempotent_and_keeps_booked_windows(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        slots = make_slots(session, hours=(8, 10), capacity=2)
        make_order(session, window=(slots[0].start, slots[0].end))
        day = slots[0].day
        again = put_capacity(session, region="berlin", day=day, slots=[
            SlotFields(s.start, s.end, 2) for s in slots])
        assert [s.id for s in again] == [s.id for s in slots]
        # A window the operator drops: kept (it is booked) but closed to new bookings.
        kept = put_capacity(session, region="berlin", day=day,
                            slots=[SlotFields(slots[1].start, slots[1].end, 3)])
        assert [(s.start, s.capacity) for s in kept] == [(slots[1].start, 3)]
        closed = session.get(CapacitySlot, slots[0].id)
        assert (closed.capacity, closed.booked) == (1, 1)


def _race(sessions: sessionmaker[Session], order_ids: list[int], slot_id: int
          ) -> tuple[int, int, list[BaseException]]:
    wins, losses, errors = [], [], []
    barrier = threading.Barrier(len(order_ids))

    def attempt(order_id: int) -> None:
        barrier.wait()
        try:
            with transaction(sessions) as session:
                book_slot(session, order_id=order_id, slot_id=slot_id, changed_by="customer",
                          reason=None, now=NOW)
            wins.append(order_id)
        except SlotTaken:
            losses.append(order_id)
        except BaseException as exc:  # a deadlock or lock timeout would be a bug
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in order_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return len(wins), len(losses), errors


@pytest.mark.slow
def test_fifty_concurrent_bookings_for_five_places(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        target, *others = make_slots(session, hours=(8, 10, 12), capacity=20)
        target.capacity = 5
        orders = [make_order(session, window=(others[i % 2].start, others[i % 2].end))
                  for i in range(50)]
        order_ids, slot_id = [o.id for o in orders], target.id
    wins, losses, errors = _race(sessions, order_ids, slot_id)
    assert errors == []
    assert (wins, losses) == (5, 45)
    with transaction(sessions) as session:
        assert session.get(CapacitySlot, slot_id).booked == 5
        assert sum(s.booked for s in session.query(CapacitySlot)) == 50


def test_two_moves_in_opposite_directions_do_not_deadlock(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        a, b = make_slots(session, hours=(8, 10), capacity=5)
        first = make_order(session, window=(a.start, a.end))
        second = make_order(session, window=(b.start, b.end))
        ids = first.id, second.id, a.id, b.id
    errors: list[BaseException] = []

    def move(order_id: int, slot_id: int) -> None:
        try:
            for _ in range(10):
                with transaction(sessions) as session:
                    book_slot(session, order_id=order_id, slot_id=slot_id,
                              changed_by="operator", reason=None, now=NOW)
                with transaction(sessions) as session:
                    back = ids[2] if slot_id == ids[3] else ids[3]
                    book_slot(session, order_id=order_id, slot_id=back,
                              changed_by="operator", reason=None, now=NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(ids[0], ids[3])),
               threading.Thread(target=move, args=(ids[1], ids[2]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with transaction(sessions) as session:
        counts = [session.get(CapacitySlot, i).booked for i in ids[2:]]
        assert sum(counts) == 2
