"""Notes for the technician and ratings of the visit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Note, Rating


def add_note(session: Session, *, order_id: int, text: str, now: datetime) -> Note:
    """Keep a note for the technician."""
    note = Note(order_id=order_id, text=text, created_at=now)
    session.add(note)
    session.flush()
    return note


def notes_of_order(session: Session, *, order_id: int) -> list[Note]:
    """Return the order's notes, oldest first."""
    return list(session.scalars(select(Note).where(Note.order_id == order_id).order_by(Note.id)))


def add_rating(
    session: Session, *, order_id: int, stars: int | None, text: str | None, now: datetime
) -> Rating:
    """Keep the customer's rating of the visit."""
    if stars is not None and not 1 <= stars <= 5:
        raise ValueError("stars must be between 1 and 5")
    rating = Rating(order_id=order_id, stars=stars, text=text, created_at=now)
    session.add(rating)
    session.flush()
    return rating


def ratings_of_order(session: Session, *, order_id: int) -> list[Rating]:
    """Return the order's ratings, oldest first."""
    return list(
        session.scalars(select(Rating).where(Rating.order_id == order_id).order_by(Rating.id))
    )
