"""One turn of a chat: parse, run the dialogue engine, carry out its commands, store the state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot import handoffs
from bot.arrivals import predict_for_order
from bot.services import Services
from dialogues.engine import step
from dialogues.model import (
    BookSlot,
    CancelVisit,
    Command,
    CommandFailed,
    Conversation,
    Incoming,
    JoinWaitlist,
    LeaveWaitlist,
    OpenHandoff,
    OrderView,
    PassWaitlistOffer,
    Reply,
    Rules,
    SaveNote,
    SaveRating,
    SetLanguage,
    SetNotifications,
    SlotView,
    State,
    Step,
    TakeWaitlistOffer,
)
from dialogues.texts import Texts
from locales import LANGUAGES, load_catalog
from storage import waitlist
from storage.chats import (
    get_chat,
    load_conversation,
    lock_chat,
    save_conversation,
    set_notifications,
)
from storage.db import transaction
from storage.errors import ConversationConflict, SlotNotFound, SlotTaken
from storage.handoffs import open_handoff_of_chat
from storage.models import Chat, Order
from storage.orders import cancel_order, get_order_by_id
from storage.records import add_note, add_rating
from storage.slots import book_slot, free_slots

log = logging.getLogger(__name__)
SAVE_ATTEMPTS = 3  # another worker may save the same conversation between our read and write


def rules_of(services: Services) -> Rules:
    """Turn the operator's settings into the engine's rules."""
    rules = services.settings.rules
    return Rules(
        reschedule_cutoff=timedelta(hours=rules.reschedule_cutoff_hours),
        max_moves=rules.max_moves_per_order,
        offer_slots=rules.offer_slots,
        offer_validity=timedelta(minutes=rules.offer_validity_minutes),
        idle_reset=timedelta(hours=rules.conversation_idle_hours),
        waitlist_hold=timedelta(minutes=services.settings.waitlist.hold_minutes),
    )


def texts_factory(timezone: str) -> Callable[[str], Texts]:
    """Return a function that gives the texts of a language, in the visit's time zone."""
    def texts_for(language: str) -> Texts:
        language = language if language in LANGUAGES else "de"
        return Texts(language, load_catalog(language), timezone)
    return texts_for


@dataclass(frozen=True)
class ChatState:
    """What a turn needs to know before parsing: the order and the language so far."""

    order_id: int | None
    language: str | None


def chat_state(services: Services, *, chat_key: str) -> ChatState:
    """Read the chat's order and the conversation's language (a short read, before the NLU)."""
    with transaction(services.sessions) as session:
        chat = get_chat(session, chat_key=chat_key)
        conversation = load_conversation(session, chat_key=chat_key)
        language = conversation.language if conversation else (chat.language if chat else None)
        return ChatState(chat.order_id if chat else None, language)


def conversation_of(session: Session, chat_key: str, fallback_language: str
                    ) -> tuple[Conversation, int | None]:
    """Load the stored conversation, or a new one in the fallback language."""
    stored = load_conversation(session, chat_key=chat_key)
    if stored is None:
        return Conversation(language=fallback_language), None
    try:
        state = State(stored.state)
    except ValueError:  # a state from an older version of the engine
        state = State.IDLE
    return Conversation(state=state, language=stored.language, data=dict(stored.data),
                        last_activity=stored.last_activity), stored.version


def order_view(session: Session, *, order: Order, services: Services, now: datetime
               ) -> OrderView:
    """Build the engine's read-only view of the order; route and free slots are read if asked."""
    horizon = now + timedelta(days=services.settings.rules.offer_horizon_days)

    def load_free_slots() -> tuple[SlotView, ...]:
        slots = free_slots(session, region=order.region, after=now, until=horizon, limit=200)
        return tuple(SlotView(s.id, s.start, s.end) for s in slots)

    return OrderView(
        number=order.number,
        status=order.status,
        timezone=order.timezone,
        window_start=order.window_start,
        window_end=order.window_end,
        technician_name=order.technician.name if order.technician else None,
        code_word=order.technician.code_word if order.technician else None,
        status_reason=order.status_reason,
        moves=order.moves,
        slot_id=order.slot_id,
        arrived_at=order.arrived_at,
        finished_at=order.finished_at,
        monthly_fee_cents=order.monthly_fee_cents,
        on_waitlist=waitlist.open_entry(session, order_id=order.id) is not None,
        load_prediction=lambda: predict_for_order(session, order=order, services=services,
                                                  now=now),
        load_free_slots=load_free_slots,
        load_handoff_outlook=lambda language: handoffs.outlook(
            session, services, language=language, now=now, order=order),
    )


def _carry_out(session: Session, command: Command, *, order: Order, chat: Chat | None,
               now: datetime, services: Services, after: Conversation, chat_key: str) -> None:
    """Do what the engine asked, through storage; raise SlotTaken when the booking lost."""
    match command:
        case BookSlot(slot_id):
            book_slot(session, order_id=order.id, slot_id=slot_id, changed_by="customer",
                      reason="moved by the customer in the chat", now=now)
        case CancelVisit(reason):
            cancel_order(session, order=order, changed_by="customer", reason=reason, now=now)
            waitlist.leave(session, order_id=order.id, now=now)
        case SaveNote(text):
            add_note(session, order_id=order.id, text=text, now=now)
        case OpenHandoff(reason):
            handoffs.open_for_chat(session, services, order=order, chat_key=chat_key,
                                   language=after.language, reason=reason,
                                   recent=list(after.data.get("recent", [])), now=now)
        case SaveRating(stars, text):
            add_rating(session, order_id=order.id, stars=stars, text=text, now=now)
        case SetLanguage(language):
            if chat is not None:
                chat.language = language
        case SetNotifications(enabled):
            if chat is not None:
                set_notifications(session, chat=chat, enabled=enabled)
        case JoinWaitlist(before, part):
            waitlist.join(session, order=order, before=before, part=part, now=now)
        case LeaveWaitlist():
            waitlist.leave(session, order_id=order.id, now=now)
        case TakeWaitlistOffer(offer_id):
            waitlist.take(session, offer_id=offer_id, order_id=order.id, now=now)
        case PassWaitlistOffer(offer_id):
            with suppress(waitlist.HoldGone):  # it ran out anyway: nothing left to pass on
                waitlist.pass_on(session, offer_id=offer_id, order_id=order.id, now=now)


@dataclass(frozen=True)
class Turn:
    """What a turn said, the conversation's language after it, and whether it asked something."""

    replies: tuple[Reply, ...]
    language: str
    question_open: bool = False  # the conversation waits for an answer (an offer, a yes/no)


def run_turn(services: Services, *, chat_key: str, order_id: int, incoming: Incoming,
             fallback_language: str) -> tuple[Reply, ...]:
    """Run one engine step in one transaction, carrying out its commands; return the replies."""
    turn = _run_turn(services, chat_key, order_id, incoming, fallback_language)
    assert turn is not None  # the order was given
    return turn.replies


def run_chat_turn(services: Services, *, chat_key: str, incoming: Incoming,
                  fallback_language: str) -> Turn | None:
    """Run a turn for the chat's own order, read in the same transaction; None if unlinked."""
    return _run_turn(services, chat_key, None, incoming, fallback_language)


def _run_turn(services: Services, chat_key: str, order_id: int | None, incoming: Incoming,
              fallback_language: str) -> Turn | None:
    for attempt in range(SAVE_ATTEMPTS):
        try:
            return _run_turn_once(services, chat_key, order_id, incoming, fallback_language)
        except ConversationConflict:
            log.info("conversation saved by another worker; retrying (%d)", attempt + 1)
    raise ConversationConflict(chat_key)


def _run_turn_once(services: Services, chat_key: str, order_id: int | None, incoming: Incoming,
                   fallback_language: str) -> Turn | None:
    rules = rules_of(services)
    with transaction(services.sessions) as session:
        lock_chat(session, chat_key=chat_key)  # another replica's turn of this chat goes first
        now = services.clock()
        chat = get_chat(session, chat_key=chat_key)
        if order_id is None:
            if chat is None or chat.order_id is None:
                return None
            order_id = chat.order_id
        order = get_order_by_id(session, order_id=order_id)
        if order is None:
            raise LookupError("the chat's order no longer exists")
        conversation, version = conversation_of(session, chat_key, fallback_language)
        texts_for = texts_factory(order.timezone)
        handoff = open_handoff_of_chat(session, chat_key=chat_key)
        if handoff is not None:  # a person holds the chat: the bot only passes messages on
            replies, back = handoffs.customer_turn(
                session, services, handoff=handoff, order=order, incoming=incoming,
                t=texts_for(conversation.language), now=now)
            if back:
                save_conversation(session, chat_key=chat_key, state=State.IDLE,
                                  language=conversation.language, data=conversation.data,
                                  now=now, expected_version=version)
            return Turn(replies, conversation.language)
        view = order_view(session, order=order, services=services, now=now)
        decide = partial(step, rules=rules, texts_for=texts_for)
        result = decide(conversation, incoming, view, now)
        result = _apply(session, result, decide, conversation, view, order, chat, now, services,
                        chat_key)
        save_conversation(session, chat_key=chat_key, state=result.conversation.state,
                          language=result.conversation.language,
                          data=result.conversation.data, now=now, expected_version=version)
        return Turn(result.replies, result.conversation.language,
                    question_open=result.conversation.state != State.IDLE)


def _apply(session: Session, result: Step, decide: Callable[..., Step],
           conversation: Conversation, view: OrderView, order: Order, chat: Chat | None,
           now: datetime, services: Services, chat_key: str) -> Step:
    """Carry out the step's commands; when one fails, ask the engine again with the outcome."""
    for command in result.commands:
        try:
            with session.begin_nested():
                _carry_out(session, command, order=order, chat=chat, now=now,
                           services=services, after=result.conversation, chat_key=chat_key)
        except (SlotTaken, SlotNotFound):
            fresh = order_view(session, order=order, services=services, now=now)
            return decide(conversation, CommandFailed(command, "slot_taken"), fresh, now)
        except waitlist.HoldGone:
            fresh = order_view(session, order=order, services=services, now=now)
            return decide(conversation, CommandFailed(command, "hold_gone"), fresh, now)
    return result


async def handle_chat(services: Services, *, chat_key: str, incoming: Incoming,
                      fallback_language: str) -> Turn | None:
    """Run a turn for the chat's own order off the event loop; None if the chat is unlinked."""
    return await run_in_threadpool(run_chat_turn, services, chat_key=chat_key,
                                   incoming=incoming, fallback_language=fallback_language)
