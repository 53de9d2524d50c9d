"""Notes for the technician, support tickets and ratings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Note, Rating, Ticket


def add_note(session: Session, *, order_id: int, text: str, now: datetime) -> Note:
    """Keep a note for the technician."""
    note = Note(order_id=order_id, text=text, created_at=now)
    session.add(note)
    session.flush()
    return note


def notes_of_order(session: Session, *, order_id: int) -> list[Note]:
    """Return the order's notes, oldest first."""
    return list(session.scalars(select(Note).where(Note.order_id == order_id).order_by(Note.id)))


def open_ticket(
    session: Session, *, order_id: int | None, kind: str, transcript: str, now: datetime
) -> Ticket:
    """Open a support ticket for a person to answer."""
    ticket = Ticket(order_id=order_id, kind=kind, transcript=transcript, created_at=now)
    session.add(ticket)
    session.flush()
    return ticket


def tickets_of_order(session: Session, *, order_id: int) -> list[Ticket]:
    """Return the order's tickets, oldest first."""
    return list(
        session.scalars(select(Ticket).where(Ticket.order_id == order_id).order_by(Ticket.id))
    )


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
