"""SQLAlchemy models: the schema of every durable fact techbot keeps."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC; SQLite keeps no zone, so re-attach UTC on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; times must be aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# "Decide at the next tick": earlier than any clock, so every due-query finds it.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


class OrderStatus(enum.StrEnum):
    UNSCHEDULED = "unscheduled"
    SCHEDULED = "scheduled"
    EN_ROUTE = "en_route"
    ARRIVED = "arrived"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


# Orders in these states can still produce a push; the scheduler's tick reads only them.
ACTIVE_STATUSES = (
    OrderStatus.SCHEDULED,
    OrderStatus.EN_ROUTE,
    OrderStatus.ARRIVED,
)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="de")
    postal_code: Mapped[str] = mapped_column(String(16))
    phone: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Technician(Base):
    __tablename__ = "technicians"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    code_word: Mapped[str | None] = mapped_column(String(64))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    position_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CapacitySlot(Base):
    __tablename__ = "capacity_slots"
    __table_args__ = (
        UniqueConstraint("region", "start", "end", name="uq_capacity_slots_window"),
        Index("ix_capacity_slots_region_start", "region", "start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)
    # Places held for a waitlisted customer while their offer runs: free for nobody else.
    held: Mapped[int] = mapped_column(Integer, default=0)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_status_window_start", "status", "window_start"),
        # Finished orders are looked at only right after they changed (cancellation, rating).
        Index("ix_orders_status_updated_at", "status", "updated_at"),
        # The tick decides only the orders whose decision fell due (dialogues/due.py says when).
        Index("ix_orders_decide_after", "decide_after"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.UNSCHEDULED)
    street: Mapped[str] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(16))
    city: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    region: Mapped[str] = mapped_column(String(64), default="default")
    technician_id: Mapped[str | None] = mapped_column(
        ForeignKey("technicians.id", ondelete="SET NULL")
    )
    slot_id: Mapped[int | None] = mapped_column(ForeignKey("capacity_slots.id"))
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    moves: Mapped[int] = mapped_column(Integer, default=0)
    monthly_fee_cents: Mapped[int | None] = mapped_column(Integer)
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime)
    eta_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    departed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set off for this visit
    job_type: Mapped[str | None] = mapped_column(String(64))  # as dispatch names the kind of job
    # When the pushes of this order must next be decided; NULL: only when something changes.
    decide_after: Mapped[datetime | None] = mapped_column(UTCDateTime, default=lambda: EARLIEST)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship(lazy="joined")
    technician: Mapped[Technician | None] = relationship(lazy="joined")


class AppointmentChange(Base):
    __tablename__ = "appointment_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    old_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    old_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    new_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    new_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    changed_by: Mapped[str] = mapped_column(String(16))  # customer | operator | system
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderEvent(Base):
    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RouteStop(Base):
    __tablename__ = "route_stops"
    __table_args__ = (
        UniqueConstraint("technician_id", "day", "position", name="uq_route_stops_position"),
        Index("ix_route_stops_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    technician_id: Mapped[str] = mapped_column(ForeignKey("technicians.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    position: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    planned_minutes: Mapped[int] = mapped_column(Integer)


class Chat(Base):
    """A Telegram chat (or terminal session) and the order it speaks about."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_key: Mapped[str] = mapped_column(String(64), unique=True)  # "tg:<chat id>", "term:<n>"
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL")
    )
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), index=True
    )
    language: Mapped[str | None] = mapped_column(String(8))
    notifications_enabled: Mapped[bool] = mapped_column(default=True)
    unreachable: Mapped[bool] = mapped_column(default=False)
    # The Telegram message that shows the approaching technician's live location, if any.
    live_location_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkToken(Base):
    """A single-use token that binds a chat to an order; only its hash is kept."""

    __tablename__ = "link_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdentifyFailure(Base):
    """A failed order-number/postal-code try, counted per chat for the lockout."""

    __tablename__ = "identify_failures"
    __table_args__ = (Index("ix_identify_failures_chat_key_at", "chat_key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Conversation(Base):
    __tablename__ = "conversations"

    chat_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_activity: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HandoffStatus(enum.StrEnum):
    WAITING = "waiting"  # for an agent to claim it; the bot has stepped aside
    ACTIVE = "active"  # one agent holds the conversation
    CLOSED = "closed"  # handed back: the bot answers again


OPEN_HANDOFF = (HandoffStatus.WAITING, HandoffStatus.ACTIVE)


class Handoff(Base):
    """A chat handed to a person: who asked, why, who holds it, how it ended."""

    __tablename__ = "handoffs"
    __table_args__ = (
        Index("ix_handoffs_status_language_opened_at", "status", "language", "opened_at"),
        # One open handoff per chat: a second "I want a person" joins the first.
        Index("uq_handoffs_open_chat", "chat_key", unique=True,
              sqlite_where=text("status != 'closed'"),
              postgresql_where=text("status != 'closed'")),
        Index("ix_handoffs_claim_deadline", "claim_deadline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    chat_key: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=HandoffStatus.WAITING)
    # customer_asked | complaint | compensation | not_understood | delay_rejected | migrated
    reason: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # No claim by then (opening hours counted): the customer is told and offered a call back.
    claim_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timeout_told_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    callback_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    waiting_told_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_customer_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(100))  # an agent, or "customer"
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_note: Mapped[str | None] = mapped_column(Text)


class Agent(Base):
    """A person of the service team who answers handed-over chats in the console."""

    __tablename__ = "agents"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, never the password
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every language
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HandoffMessage(Base):
    """One message of a handed-over chat: the transcript before, then everything since."""

    __tablename__ = "handoff_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handoff_id: Mapped[int] = mapped_column(
        ForeignKey("handoffs.id", ondelete="CASCADE"), index=True)
    sender: Mapped[str] = mapped_column(String(16))  # customer | bot | agent
    agent: Mapped[str | None] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One handoff event for the operator's webhook: posted until it is taken, every try kept."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # attempts exhausted
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WaitlistStatus(enum.StrEnum):
    WAITING = "waiting"  # for an earlier window that fits
    OFFERED = "offered"  # one is held for the customer right now
    DONE = "done"  # moved to an earlier window (by the offer, or otherwise)
    LEFT = "left"  # the customer left the list, or the visit ended


class WaitlistEntry(Base):
    """A visit whose customer wants an earlier window if one frees up."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        Index("ix_waitlist_entries_status_queued_at", "status", "queued_at"),
        # One entry per order while it waits: asking again changes its wishes.
        Index("uq_waitlist_entries_open_order", "order_id", unique=True,
              sqlite_where=text("status IN ('waiting', 'offered')"),
              postgresql_where=text("status IN ('waiting', 'offered')")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    region: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=WaitlistStatus.WAITING)
    before: Mapped[datetime] = mapped_column(UTCDateTime)  # only windows starting before this
    part: Mapped[str | None] = mapped_column(String(16))  # morning | midday | afternoon | evening
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Its place in line: when it joined, or when it last let a held window go (then it goes
    # behind those who waited meanwhile).
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WaitlistOffer(Base):
    """One held place offered to one waiting customer, until it is taken or runs out."""

    __tablename__ = "waitlist_offers"
    __table_args__ = (Index("ix_waitlist_offers_status_expires_at", "status", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("waitlist_entries.id", ondelete="CASCADE"), index=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("capacity_slots.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # held | taken | expired | passed | void
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Rating(Base):
    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    stars: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    HELD = "held"  # not sendable now (quiet hours are decided before insert; this is opt-out)
    FAILED = "failed"  # gave up: blocked chat or attempts exhausted


class Notification(Base):
    """One push in the outbox; (order_id, dedupe_key) makes deciding it twice harmless."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("order_id", "dedupe_key", name="uq_notifications_order_dedupe"),
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | sent | retry | blocked | error
    detail: Mapped[str | None] = mapped_column(String(500))
    # "delivered" rows name the chat that got the push, so a retry skips the chats already told.
    chat_key: Mapped[str | None] = mapped_column(String(64))


class VisitHistory(Base):
    """One finished visit as the arrival model learns from it: the job's and the drive's times."""

    __tablename__ = "visit_history"
    __table_args__ = (
        Index("ix_visit_history_technician_id_id", "technician_id", "id"),
        Index("ix_visit_history_day", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    technician_id: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)  # the visit's local day
    job_type: Mapped[str | None] = mapped_column(String(64))
    planned_minutes: Mapped[int] = mapped_column(Integer)
    duration_minutes: Mapped[float] = mapped_column(Float)
    # The drive from the previous visit, when it can be told apart from waiting for the window.
    drive_minutes: Mapped[float | None] = mapped_column(Float)
    drive_km: Mapped[float | None] = mapped_column(Float)
    drive_hour: Mapped[int | None] = mapped_column(Integer)  # local hour the drive began
    # First visit of the day: the local minute of the day the technician set off.
    start_minute: Mapped[int | None] = mapped_column(Integer)
    # The dispatcher's last ETA for this visit: how wrong it was, and how far ahead it was told.
    eta_error_minutes: Mapped[float | None] = mapped_column(Float)
    eta_horizon_minutes: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ArrivalForecast(Base):
    """A window the model predicted, kept until the arrival shows how well it held."""

    __tablename__ = "arrival_forecasts"
    __table_args__ = (Index("ix_arrival_forecasts_made_at", "made_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    made_at: Mapped[datetime] = mapped_column(UTCDateTime)
    low: Mapped[datetime] = mapped_column(UTCDateTime)  # the model's own, uncalibrated quantiles
    median: Mapped[datetime] = mapped_column(UTCDateTime)
    high: Mapped[datetime] = mapped_column(UTCDateTime)
    ahead: Mapped[int] = mapped_column(Integer, default=0)  # visits to come before this one


class SendPace(Base):
    """When the bot (key "*") or one chat may next be sent a message, for every replica."""

    __tablename__ = "send_pace"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # "*" or a chat key
    next_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChatUpdate(Base):
    """A Telegram update a replica took from the webhook: handled in its chat's order, once."""

    __tablename__ = "chat_updates"
    __table_args__ = (Index("ix_chat_updates_received_at", "received_at"),)

    chat_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
