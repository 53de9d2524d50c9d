"""Chats, single-use link tokens, identification lockout and conversations."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from storage.errors import ConversationConflict, LinkTokenInvalid
from storage.models import EARLIEST, Chat, Conversation, IdentifyFailure, LinkToken, Order

# Compared against when no order matches, so a miss costs the same as a wrong postal code.
_DUMMY_POSTAL_CODE = "00000"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_link_token(session: Session, *, order_id: int, ttl: timedelta, now: datetime) -> str:
    """Make a single-use token for the deep link; only its hash is stored."""
    token = secrets.token_urlsafe(24)
    session.add(LinkToken(token_hash=_hash_token(token), order_id=order_id,
                          expires_at=now + ttl, created_at=now))
    session.flush()
    return token


def redeem_link_token(session: Session, *, token: str, now: datetime) -> Order:
    """Use the token once and return its order; raise LinkTokenInvalid saying why not."""
    token_hash = _hash_token(token)
    claimed = session.execute(
        update(LinkToken)
        .where(LinkToken.token_hash == token_hash, LinkToken.used_at.is_(None),
               LinkToken.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    row = session.get(LinkToken, token_hash)
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        if row is None:
            raise LinkTokenInvalid("unknown")
        raise LinkTokenInvalid("used" if row.used_at is not None else "expired")
    order = session.get(Order, row.order_id) if row is not None else None
    if order is None:
        raise LinkTokenInvalid("unknown")
    return order


def find_order_for_identification(
    session: Session, *, number: str, postal_code: str
) -> Order | None:
    """Return the order only if number and postal code both match, in constant time."""
    order = session.scalar(select(Order).where(Order.number == number))
    expected = order.postal_code if order is not None else _DUMMY_POSTAL_CODE
    given = postal_code.strip().replace(" ", "")
    matches = hmac.compare_digest(expected.replace(" ", "").encode(), given.encode())
    return order if order is not None and matches else None


def record_identify_failure(session: Session, *, chat_key: str, now: datetime) -> None:
    """Count a failed identification try for the chat."""
    session.add(IdentifyFailure(chat_key=chat_key, at=now))
    session.flush()


def identify_failures_since(session: Session, *, chat_key: str, since: datetime) -> int:
    """Return how many identification tries the chat failed since then."""
    return session.scalar(
        select(func.count(IdentifyFailure.id)).where(
            IdentifyFailure.chat_key == chat_key, IdentifyFailure.at >= since
        )
    ) or 0


def get_chat(session: Session, *, chat_key: str) -> Chat | None:
    """Return the chat, or None."""
    return session.scalar(select(Chat).where(Chat.chat_key == chat_key))


def ensure_chat(
    session: Session, *, chat_key: str, telegram_chat_id: int | None, now: datetime
) -> Chat:
    """Return the chat, creating it on first contact."""
    chat = get_chat(session, chat_key=chat_key)
    if chat is None:
        chat = Chat(chat_key=chat_key, telegram_chat_id=telegram_chat_id, created_at=now)
        session.add(chat)
        session.flush()
    return chat


def link_chat(session: Session, *, chat: Chat, order: Order) -> None:
    """Bind the chat to the order (and its customer); a reachable chat gets pushes again."""
    chat.order_id = order.id
    chat.customer_id = order.customer_id
    chat.unreachable = False
    session.flush()


def chats_of_order(session: Session, *, order_id: int) -> list[Chat]:
    """Return the chats that speak about this order."""
    return list(session.scalars(select(Chat).where(Chat.order_id == order_id)))


def orders_of_customer(session: Session, *, customer_id: int) -> list[Order]:
    """Return the customer's orders, newest first."""
    return list(
        session.scalars(
            select(Order).where(Order.customer_id == customer_id).order_by(Order.id.desc())
        )
    )


def set_notifications(session: Session, *, chat: Chat, enabled: bool) -> None:
    """Turn the chat's pushes on or off (pushes held back meanwhile are decided again)."""
    chat.notifications_enabled = enabled
    if chat.order_id is not None:
        session.execute(update(Order).where(Order.id == chat.order_id)
                        .values(decide_after=EARLIEST)
                        .execution_options(synchronize_session=False))
    session.flush()


def mark_unreachable(session: Session, *, telegram_chat_id: int, unreachable: bool = True
                     ) -> None:
    """Stop pushes to a chat that blocked the bot (or resume them when it unblocks it)."""
    session.execute(
        update(Chat).where(Chat.telegram_chat_id == telegram_chat_id)
        .values(unreachable=unreachable)
    )


def delete_chat_data(session: Session, *, chat_key: str) -> None:
    """Forget the chat, its link and its conversation."""
    session.execute(delete(Conversation).where(Conversation.chat_key == chat_key))
    session.execute(delete(IdentifyFailure).where(IdentifyFailure.chat_key == chat_key))
    session.execute(delete(Chat).where(Chat.chat_key == chat_key))


CHAT_LOCKS = 7_301  # the first half of the two-part advisory lock keys of chats' turns


def lock_chat(session: Session, *, chat_key: str) -> None:
    """Hold the chat until the transaction ends: one turn of a chat at a time, on any replica.

    SQLite writes one transaction at a time anyway (BEGIN IMMEDIATE).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                        {"space": CHAT_LOCKS, "key": chat_key})


def load_conversation(session: Session, *, chat_key: str) -> Conversation | None:
    """Return the stored conversation of the chat, or None."""
    return session.get(Conversation, chat_key)


def save_conversation(
    session: Session,
    *,
    chat_key: str,
    state: str,
    language: str,
    data: dict[str, Any],
    now: datetime,
    expected_version: int | None,
) -> int:
    """Store the conversation if nobody saved it since it was read; return the new version."""
    if expected_version is None:
        session.add(Conversation(chat_key=chat_key, state=state, language=language, data=data,
                                 last_activity=now, version=1))
        session.flush()
        return 1
    result = session.execute(
        update(Conversation)
        .where(Conversation.chat_key == chat_key, Conversation.version == expected_version)
        .values(state=state, language=language, data=data, last_activity=now,
                version=expected_version + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConversationConflict(chat_key)
    return expected_version + 1


def delete_conversation(session: Session, *, chat_key: str) -> None:
    """Forget the chat's dialogue state (the chat and its link stay)."""
    session.execute(delete(Conversation).where(Conversation.chat_key == chat_key))


def chats_of_orders(session: Session, *, order_ids: list[int]) -> dict[int, list[Chat]]:
    """Return the chats of each order, in one query per 500 orders."""
    found: dict[int, list[Chat]] = {i: [] for i in order_ids}
    for start in range(0, len(order_ids), 500):
        for chat in session.scalars(select(Chat).where(
                Chat.order_id.in_(order_ids[start:start + 500]))):
            if chat.order_id is not None:
                found[chat.order_id].append(chat)
    return found


def chats_of_technician_en_route(
    session: Session, *, technician_id: str
) -> list[tuple[Chat, Order]]:
    """Return the chats whose order's technician is on the way to them."""
    rows = session.execute(
        select(Chat, Order).join(Order, Order.id == Chat.order_id)
        .where(Order.technician_id == technician_id, Order.status == "en_route",
               Chat.telegram_chat_id.is_not(None), Chat.unreachable.is_(False)))
    return [(row[0], row[1]) for row in rows]
