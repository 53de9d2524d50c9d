"""The bot's send pace and its chats' update order, kept where every replica sees them.

The pace is PostgreSQL's alone (SQLite is one process's database, whose pace is in memory):
it reads the database's own clock, so replicas on machines whose clocks differ agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.models import ChatUpdate, SendPace

BOT = "*"  # the key of the bot-wide pace; every other key is a chat's


@dataclass(frozen=True)
class Reservation:
    """A send moment: granted (send after `wait` seconds) or not yet (look again then)."""

    granted: bool
    wait: float  # seconds from `now`
    now: datetime  # the database's clock when it was reserved


def reserve_send(session: Session, *, chat_key: str, interval: float, per_chat: float,
                 only_if_idle: bool = False) -> Reservation:
    """Reserve the next moment the bot may send to the chat (PostgreSQL).

    A chat still inside its own pause is told to look again when it ends, without taking
    a bot-wide moment (which would leave that moment unused by every other chat). With
    `only_if_idle` (pushes) nothing is reserved while others' sends are queued: a customer
    waiting for an answer goes before a push.
    """
    row = session.execute(text(
        "INSERT INTO send_pace (key, next_at) VALUES (:key, clock_timestamp()) "
        "ON CONFLICT (key) DO UPDATE SET next_at = send_pace.next_at "
        "RETURNING next_at, clock_timestamp()"), {"key": chat_key}).one()
    chat_next, now = row[0], row[1]
    if chat_next > now:
        return Reservation(False, (chat_next - now).total_seconds(), now)
    step = timedelta(seconds=interval)
    at = session.scalar(text(
        "INSERT INTO send_pace (key, next_at) VALUES (:bot, :now + :step) "
        "ON CONFLICT (key) DO UPDATE SET next_at = GREATEST(send_pace.next_at, :now) + :step "
        "WHERE NOT :idle OR send_pace.next_at <= :now RETURNING next_at - :step"),
        {"bot": BOT, "now": now, "step": step, "idle": only_if_idle})
    if at is None:  # only_if_idle, and the bot's next moment is taken by others' sends
        queued = session.scalar(select(SendPace.next_at).where(SendPace.key == BOT))
        wait = max(0.0, (queued - now).total_seconds()) if queued else 0.0
        return Reservation(False, wait, now)
    session.execute(text("UPDATE send_pace SET next_at = :at WHERE key = :key"),
                    {"at": at + timedelta(seconds=per_chat), "key": chat_key})
    return Reservation(True, max(0.0, (at - now).total_seconds()), now)


def pause_sends(session: Session, *, seconds: float) -> None:
    """Hold every replica's sends for a while (Telegram answered 429 with retry_after)."""
    session.execute(text(
        "INSERT INTO send_pace (key, next_at) VALUES (:bot, clock_timestamp() + :pause) "
        "ON CONFLICT (key) DO UPDATE SET next_at = "
        "GREATEST(send_pace.next_at, clock_timestamp() + :pause)"),
        {"bot": BOT, "pause": timedelta(seconds=seconds)})


def forget_paces(session: Session) -> int:
    """Drop chats' paces that ended a minute ago (they hold nothing back any more)."""
    result = session.execute(text(
        "DELETE FROM send_pace WHERE key <> :bot AND next_at < clock_timestamp() - :age"),
        {"bot": BOT, "age": timedelta(minutes=1)})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class Taken(enum.Enum):
    """What became of an update a replica tried to take."""

    TAKEN = "taken"  # ours to handle now
    DONE = "done"  # answered before: Telegram sent it again
    BUSY = "busy"  # another replica took it recently and has not answered yet


def take_update(session: Session, *, chat_key: str, update_id: int, now: datetime,
                stale_before: datetime) -> Taken:
    """Take an update; one taken before `stale_before` and never answered is taken over.

    A replica that died mid-turn leaves its update unanswered: Telegram sends it again, and
    once the first taker had its time, the update is handled here instead of lost.
    """
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    fresh = session.execute(insert(ChatUpdate).values(
        chat_key=chat_key, update_id=update_id, received_at=now).on_conflict_do_nothing()
        .returning(ChatUpdate.update_id)).first()
    if fresh is not None:
        return Taken.TAKEN
    mine = ChatUpdate.chat_key == chat_key, ChatUpdate.update_id == update_id
    # One conditional UPDATE: of two replicas taking over at once, one wins.
    over = session.execute(update(ChatUpdate).where(
        *mine, ChatUpdate.done_at.is_(None), ChatUpdate.received_at < stale_before)
        .values(received_at=now).returning(ChatUpdate.update_id)).first()
    if over is not None:
        return Taken.TAKEN
    done = session.scalar(select(ChatUpdate.done_at).where(*mine))
    return Taken.DONE if done is not None else Taken.BUSY


def earlier_pending(session: Session, *, chat_key: str, update_id: int,
                    since: datetime) -> bool:
    """Say whether an earlier update of the chat, taken since then, is still being handled."""
    return session.scalar(select(func.count()).select_from(ChatUpdate).where(
        ChatUpdate.chat_key == chat_key, ChatUpdate.update_id < update_id,
        ChatUpdate.done_at.is_(None), ChatUpdate.received_at >= since)) != 0


def finish_update(session: Session, *, chat_key: str, update_id: int, now: datetime) -> None:
    """Mark the update handled: the chat's next update may go."""
    session.execute(update(ChatUpdate).where(
        ChatUpdate.chat_key == chat_key, ChatUpdate.update_id == update_id).values(done_at=now))


def forget_updates(session: Session, *, before: datetime) -> int:
    """Drop updates taken before then (Telegram redelivers an update for a day at most)."""
    result = session.execute(delete(ChatUpdate).where(ChatUpdate.received_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
