"""Chat-level operations around the dialogue: linking, identification, on/off, forgetting."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy.orm import Session

from bot.services import Services
from bot.turns import texts_factory
from dialogues import linking
from dialogues.model import Reply
from dialogues.texts import Texts
from locales import LANGUAGES
from storage.chats import (
    delete_chat_data,
    ensure_chat,
    find_order_for_identification,
    get_chat,
    identify_failures_since,
    link_chat,
    orders_of_customer,
    record_identify_failure,
    redeem_link_token,
    set_notifications,
)
from storage.db import transaction
from storage.errors import LinkTokenInvalid
from storage.handoffs import forget_chat
from storage.models import OrderStatus

# "12345678 10115", "auftrag 12345678, plz 10115", "٤٨٢١٣٣٧٧ ١٠١١٥"
_NUMBER_AND_POSTAL = re.compile(r"(?<!\d)(\d{8})(?!\d)\D{0,40}?(?<!\d)(\d{5})(?!\d)")
_ARABIC_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789")
LOCKOUT = timedelta(hours=1)


def _language(language: str | None) -> str:
    return language if language in LANGUAGES else "de"


def texts_before_order(services: Services, language: str | None,
                       timezone: str | None = None) -> Texts:
    """Texts for a chat whose order (and so its zone) may be unknown: the operator's zone."""
    zone = timezone or services.settings.prediction.default_timezone
    return texts_factory(zone)(_language(language))


def start(services: Services, *, chat_key: str, telegram_chat_id: int | None,
          token: str | None, language: str | None) -> list[Reply]:
    """Handle /start: redeem a link token, or turn messages on again, or ask for the order."""
    t = texts_before_order(services, language)
    with transaction(services.sessions) as session:
        now = services.clock()
        chat = ensure_chat(session, chat_key=chat_key, telegram_chat_id=telegram_chat_id, now=now)
        if chat.language is None:
            chat.language = _language(language)
        t = texts_before_order(services, chat.language)
        if token:
            try:
                order = redeem_link_token(session, token=token, now=now)
            except LinkTokenInvalid as exc:
                if exc.reason == "used" and chat.order_id is not None:
                    set_notifications(session, chat=chat, enabled=True)
                    return [linking.messages_on(t)]
                return [linking.link_refused(t, reason=exc.reason)]
            link_chat(session, chat=chat, order=order)
            set_notifications(session, chat=chat, enabled=True)
            t = texts_before_order(services, chat.language, order.timezone)
            return [linking.linked(t, name=order.customer.name, number=order.number)]
        if chat.order_id is None:
            return [linking.ask_for_order(t)]
        set_notifications(session, chat=chat, enabled=True)
        replies = [linking.messages_on(t)]
        open_orders = _open_orders(session, chat.customer_id)
        if len(open_orders) > 1:
            replies.append(linking.choose_order(t, open_orders))
        return replies


def _open_orders(session: Session, customer_id: int | None) -> list[str]:
    if customer_id is None:
        return []
    done = (OrderStatus.COMPLETED, OrderStatus.CANCELLED)
    return [o.number for o in orders_of_customer(session, customer_id=customer_id)
            if o.status not in done]


def identify(services: Services, *, chat_key: str, telegram_chat_id: int | None, text: str,
             language: str | None) -> list[Reply]:
    """Link an unlinked chat by order number and postal code, with a lockout after 5 misses."""
    limit = services.settings.telegram.identify_max_failures
    with transaction(services.sessions) as session:
        now = services.clock()
        chat = ensure_chat(session, chat_key=chat_key, telegram_chat_id=telegram_chat_id, now=now)
        t = texts_before_order(services, chat.language or language)
        failures = identify_failures_since(session, chat_key=chat_key, since=now - LOCKOUT)
        if failures >= limit:
            return [linking.locked_out(t)]
        match = _NUMBER_AND_POSTAL.search(text.translate(_ARABIC_DIGITS))
        if match is None:
            return [linking.ask_for_order(t)]
        order = find_order_for_identification(session, number=match.group(1),
                                              postal_code=match.group(2))
        if order is None:
            record_identify_failure(session, chat_key=chat_key, now=now)
            left = limit - failures - 1
            return [linking.locked_out(t) if left <= 0 else
                    linking.identification_failed(t, tries_left=left)]
        link_chat(session, chat=chat, order=order)
        t = texts_before_order(services, chat.language or language, order.timezone)
        return [linking.linked(t, name=order.customer.name, number=order.number)]


def choose_order(services: Services, *, chat_key: str, number: str) -> list[Reply]:
    """Switch the chat to another open order of the same customer (never someone else's)."""
    with transaction(services.sessions) as session:
        chat = get_chat(session, chat_key=chat_key)
        if chat is None:
            return []
        t = texts_before_order(services, chat.language)
        if number not in _open_orders(session, chat.customer_id):
            return [linking.offer_expired(t)]
        order = next(o for o in orders_of_customer(session, customer_id=chat.customer_id or 0)
                     if o.number == number)
        link_chat(session, chat=chat, order=order)
        return [linking.linked(t, name=order.customer.name, number=order.number)]


def stop(services: Services, *, chat_key: str) -> list[Reply]:
    """Handle /stop: no more pushes (a cancellation still goes out)."""
    with transaction(services.sessions) as session:
        chat = get_chat(session, chat_key=chat_key)
        t = texts_before_order(services, chat.language if chat else None)
        if chat is not None:
            set_notifications(session, chat=chat, enabled=False)
        return [linking.messages_off(t)]


def ask_delete(services: Services, *, chat_key: str) -> list[Reply]:
    """Handle /delete: ask before forgetting the chat."""
    with transaction(services.sessions) as session:
        chat = get_chat(session, chat_key=chat_key)
        t = texts_before_order(services, chat.language if chat else None)
        return [linking.confirm_delete(t)]


def delete(services: Services, *, chat_key: str, confirmed: bool) -> list[Reply]:
    """Forget the chat's link and conversation after the customer confirmed."""
    with transaction(services.sessions) as session:
        chat = get_chat(session, chat_key=chat_key)
        t = texts_before_order(services, chat.language if chat else None)
        if not confirmed:
            return [linking.not_deleted(t)]
        forget_chat(session, chat_key=chat_key, now=services.clock())
        delete_chat_data(session, chat_key=chat_key)
        return [linking.deleted(t)]
