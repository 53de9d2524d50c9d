"""Orders, events, routes, records: on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from storage.errors import OrderNotFound, TechnicianNotFound
from storage.models import CapacitySlot, Order, OrderStatus
from storage.orders import (
    AddressFields,
    CustomerFields,
    appointment_history,
    get_order,
    order_events,
    record_event,
    upsert_order,
)
from storage.records import add_note, add_rating, notes_of_order
from storage.technicians import (
    StopFields,
    route_of_order,
    set_route,
    technicians_by_ids,
    update_position,
)
from tests.conftest import NOW
from tests.factories import make_order, make_slots, make_technician


def test_times_come_back_aware_in_utc(sessions: sessionmaker[Session]) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = NOW.astimezone(berlin) + timedelta(days=1)
    with transaction(sessions) as session:
        make_order(session, number="12345678", window=(start, start + timedelta(hours=2)))
    with transaction(sessions) as session:
        order = get_order(session, number="12345678")
        assert order is not None and order.window_start is not None
        assert order.window_start.utcoffset() == timedelta(0)
        assert order.window_start == start


def test_upsert_is_idempotent_and_records_only_real_window_changes(
    sessions: sessionmaker[Session],
) -> None:
    window = (NOW + timedelta(days=1), NOW + timedelta(days=1, hours=2))
    for _ in range(2):
        with transaction(sessions) as session:
            make_order(session, number="22222222", window=window)
    with transaction(sessions) as session:
        order = get_order(session, number="22222222")
        assert order is not None
        assert len(appointment_history(session, order_id=order.id)) == 1
        assert order.status == OrderStatus.SCHEDULED
        later = (window[0] + timedelta(hours=4), window[1] + timedelta(hours=4))
        upsert_order(session, number="22222222",
                     customer=CustomerFields("Erika Mustermann", "10115", "tr"),
                     address=AddressFields("Musterweg 1", "10115", "Berlin"),
                     window=later, technician_id=None, region=None, timezone=None, now=NOW)
        history = appointment_history(session, order_id=order.id)
        assert [(h.changed_by, h.new_start) for h in history] == [
            ("operator", window[0]), ("operator", later[0])]
        assert order.customer.language == "tr"


def test_events_move_the_order_through_its_day(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        (slot,) = make_slots(session, hours=(8,))
        order = make_order(session, window=(slot.start, slot.end))
        eta = NOW + timedelta(days=1, hours=1, minutes=20)
        record_event(session, order=order, type="en_route", at=NOW, eta=eta, reason=None, now=NOW)
        assert (order.status, order.eta) == (OrderStatus.EN_ROUTE, eta)
        record_event(session, order=order, type="eta", at=NOW, eta=eta + timedelta(minutes=30),
                     reason="Stau auf der A100", now=NOW)
        assert order.eta == eta + timedelta(minutes=30)
        assert order.status_reason == "Stau auf der A100"
        record_event(session, order=order, type="arrived", at=eta, eta=None, reason=None, now=NOW)
        record_event(session, order=order, type="completed", at=eta + timedelta(hours=1), eta=None,
                     reason=None, now=NOW)
        assert (order.status, order.arrived_at) == (OrderStatus.COMPLETED, eta)
        assert [e.type for e in order_events(session, order_id=order.id)] == [
            "en_route", "eta", "arrived", "completed"]
        with pytest.raises(ValueError, match="unknown event"):
            record_event(session, order=order, type="exploded", at=NOW, eta=None, reason=None,
                         now=NOW)


def test_operator_cancellation_frees_the_slot(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        (slot,) = make_slots(session, hours=(8,))
        order = make_order(session, window=(slot.start, slot.end))
        record_event(session, order=order, type="cancelled", at=NOW, eta=None,
                     reason="Techniker erkrankt", now=NOW)
        assert order.status == OrderStatus.CANCELLED
        assert (order.window_start, order.slot_id) == (None, None)
        assert session.get(CapacitySlot, slot.id).booked == 0
        assert appointment_history(session, order_id=order.id)[-1].reason == "Techniker erkrankt"


def test_routes_replace_the_day_and_know_each_stop(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        tech = make_technician(session)
        orders = [make_order(session) for _ in range(3)]
        day = (NOW + timedelta(days=1)).date()
        set_route(session, technician_id=tech, day=day,
                  stops=[StopFields(o.number, 45) for o in orders])
        set_route(session, technician_id=tech, day=day,
                  stops=[StopFields(o.number, 30) for o in reversed(orders)])
        route = route_of_order(session, order_id=orders[0].id)
        assert route is not None
        assert [o.id for _, o in route.stops] == [o.id for o in reversed(orders)]
        assert [s.position for s, _ in route.stops] == [1, 2, 3]
        assert orders[0].technician_id == tech
        with pytest.raises(OrderNotFound):
            set_route(session, technician_id=tech, day=day, stops=[StopFields("99999999", 10)])
        with pytest.raises(TechnicianNotFound):
            set_route(session, technician_id="nobody", day=day, stops=[])


def test_positions_only_move_forward_in_time(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        tech = make_technician(session)
        assert update_position(session, technician_id=tech, lat=52.5, lon=13.4, at=NOW)
        assert not update_position(session, technician_id=tech, lat=0, lon=0,
                                   at=NOW - timedelta(minutes=1))
        with pytest.raises(TechnicianNotFound):
            update_position(session, technician_id="ghost", lat=0, lon=0, at=NOW)


def test_notes_and_ratings_are_kept(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        order = make_order(session)
        add_note(session, order_id=order.id, text="Bitte bei Nachbarn klingeln, 3. OG", now=NOW)
        add_rating(session, order_id=order.id, stars=5, text="sehr freundlich", now=NOW)
        with pytest.raises(ValueError):
            add_rating(session, order_id=order.id, stars=9, text=None, now=NOW)
        assert [n.text for n in notes_of_order(session, order_id=order.id)] == [
            "Bitte bei Nachbarn klingeln, 3. OG"]


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(Exception, match="naive"), transaction(sessions) as session:
        make_order(session, window=(NOW.replace(tzinfo=None), NOW.replace(tzinfo=None)))
    with transaction(sessions) as session:
        assert session.query(Order).count() == 0


def test_technicians_are_read_in_one_go(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        for k in range(3):
            make_technician(session, technician_id=f"T-{k}", name=f"Name {k}")
        found = technicians_by_ids(session, technician_ids=["T-2", "T-0", "T-2", "T-9"])
        assert sorted(found) == ["T-0", "T-2"] and found["T-2"].name == "Name 2"
