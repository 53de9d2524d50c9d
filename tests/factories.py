"""Factories with defaults that build orders, slots and technicians for tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import count

from sqlalchemy.orm import Session

from dialogues.texts import Texts
from locales import load_catalog
from storage.models import CapacitySlot, Order
from storage.orders import AddressFields, CustomerFields, upsert_order
from storage.slots import SlotFields, put_capacity
from storage.technicians import upsert_technician
from tests.conftest import NOW

_numbers = count(10_000_001)


def make_order(
    session: Session,
    *,
    number: str | None = None,
    window: tuple[datetime, datetime] | None = None,
    language: str = "de",
    region: str = "berlin",
    postal_code: str = "10115",
    technician_id: str | None = None,
    name: str = "Erika Mustermann",
    street: str = "Musterweg 1",
    now: datetime = NOW,
) -> Order:
    """Create an order with a customer; by default booked tomorrow 09:00-11:00 UTC."""
    if window is None:
        window = (NOW + timedelta(days=1, hours=2), NOW + timedelta(days=1, hours=4))
    order, _ = upsert_order(
        session,
        number=number or str(next(_numbers)),
        customer=CustomerFields(name=name, postal_code=postal_code, language=language,
                                phone="+49 171 5550123"),
        address=AddressFields(street=street, postal_code=postal_code, city="Berlin"),
        window=window,
        technician_id=technician_id,
        region=region,
        timezone="Europe/Berlin",
        now=now,
    )
    return order


def make_slots(
    session: Session,
    *,
    region: str = "berlin",
    day: date | None = None,
    hours: tuple[int, ...] = (8, 10, 12, 14),
    capacity: int = 2,
) -> list[CapacitySlot]:
    """Create two-hour windows (UTC hours) on a day, tomorrow by default."""
    day = day or (NOW + timedelta(days=1)).date()
    base = datetime(day.year, day.month, day.day, tzinfo=NOW.tzinfo)
    return put_capacity(session, region=region, day=day, slots=[
        SlotFields(base + timedelta(hours=h), base + timedelta(hours=h + 2), capacity)
        for h in hours
    ])


def make_technician(session: Session, *, technician_id: str = "T-1", name: str = "Jonas Becker",
                    code_word: str | None = "Kranich") -> str:
    """Create a technician and return its id."""
    upsert_technician(session, technician_id=technician_id, name=name, code_word=code_word)
    return technician_id


def text_prefix(language: str, message: str) -> str:
    """Return the message in this language up to its first placeholder."""
    return Texts(language, load_catalog(language))(message).split("{")[0].strip()
