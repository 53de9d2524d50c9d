"""Plain values the dialogue engine reads and returns: no I/O, no framework."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from nlu.types import Parsed


class State(enum.StrEnum):
    IDLE = "idle"
    CHOOSING_SLOT = "choosing_slot"
    CONFIRMING_SLOT = "confirming_slot"
    CONFIRMING_CANCEL = "confirming_cancel"
    AWAITING_NOTE = "awaiting_note"
    AWAITING_RATING = "awaiting_rating"
    CHOOSING_LANGUAGE = "choosing_language"


@dataclass(frozen=True)
class SlotView:
    """A free window of the region's calendar."""

    id: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Prediction:
    """When the technician is expected, and how sure that is."""

    eta: datetime  # the median arrival
    window_start: datetime  # the central `prediction.coverage` interval, calibrated
    window_end: datetime
    stop: int | None = None  # this visit's place in the technician's route, 1-based
    stops: int | None = None
    late: float = 0.0  # the probability of arriving after the booked window ends
    # The model's own quantiles before calibration (low, median, high): what is judged later.
    raw: tuple[datetime, datetime, datetime] | None = None
    ahead: int = 0  # visits still to come before this one


@dataclass(frozen=True)
class HandoffOutlook:
    """What a customer handed to a person can be told: the team's hours, the queue, the wait."""

    open_now: bool
    back_at: datetime | None  # when the team is next at work, if not now
    position: int  # the place this customer takes (or holds) in their language's queue
    expected_wait: timedelta | None  # from recent claims; None: nothing honest to say
    answer_by: datetime | None  # the claim deadline, after which the customer is told
    phone_tail: str | None = None  # the last digits of the order's phone, for a call back


@dataclass(frozen=True)
class OrderView:
    """What the engine may know about the customer's order, read-only."""

    number: str
    status: str
    timezone: str
    window_start: datetime | None
    window_end: datetime | None
    technician_name: str | None = None
    code_word: str | None = None
    status_reason: str | None = None
    moves: int = 0
    slot_id: int | None = None
    arrived_at: datetime | None = None
    finished_at: datetime | None = None
    monthly_fee_cents: int | None = None
    on_waitlist: bool = False  # waiting for an earlier window
    # Read on demand, in the turn's transaction: most turns ("danke", "hallo") need neither
    # the route's prediction nor the region's free windows, the dearest reads of a turn.
    load_prediction: Callable[[], Prediction | None] = field(
        default=lambda: None, repr=False, compare=False)
    load_free_slots: Callable[[], tuple[SlotView, ...]] = field(
        default=tuple, repr=False, compare=False)
    # What a handoff opened now could promise, in the customer's language's queue.
    load_handoff_outlook: Callable[[str], HandoffOutlook] = field(
        default=lambda _language: HandoffOutlook(True, None, 1, None, None),
        repr=False, compare=False)

    @cached_property
    def prediction(self) -> Prediction | None:
        """Return the expected arrival, read once."""
        return self.load_prediction()

    @cached_property
    def free_slots(self) -> tuple[SlotView, ...]:
        """Return the region's free windows, soonest first, read once."""
        return self.load_free_slots()

    @property
    def technician_first_name(self) -> str | None:
        """Return the technician's first name, the way the customer is told."""
        return self.technician_name.split()[0] if self.technician_name else None


@dataclass(frozen=True)
class Rules:
    """The operator's rules for self-service, from config.yml."""

    reschedule_cutoff: timedelta = timedelta(hours=2)
    max_moves: int = 3
    offer_slots: int = 4
    offer_validity: timedelta = timedelta(minutes=30)
    idle_reset: timedelta = timedelta(hours=6)
    waitlist_hold: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class Button:
    """One inline button: what it says and the short payload it sends back."""

    title: str
    payload: str


@dataclass(frozen=True)
class Reply:
    """One message to the customer, already in their language."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()

    @property
    def flat_buttons(self) -> list[Button]:
        """Return the buttons row by row, as one list."""
        return [b for row in self.buttons for b in row]


# Inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextMessage:
    """Free text from the customer and what the NLU made of it."""

    text: str
    parsed: Parsed


@dataclass(frozen=True)
class ButtonPress:
    """A tap on an inline button; its payload is untrusted until checked."""

    payload: str


@dataclass(frozen=True)
class CommandFailed:
    """A command of the previous step could not be carried out."""

    command: Command
    reason: str  # slot_taken | not_allowed | error


Incoming = TextMessage | ButtonPress | CommandFailed


# Commands the caller carries out through storage -----------------------------------------------


@dataclass(frozen=True)
class BookSlot:
    slot_id: int


@dataclass(frozen=True)
class CancelVisit:
    reason: str


@dataclass(frozen=True)
class SaveNote:
    text: str


@dataclass(frozen=True)
class OpenHandoff:
    """Hand the chat to a person; the caller keeps the conversation's recent messages."""

    reason: str  # customer_asked | complaint | compensation | not_understood | delay_rejected


@dataclass(frozen=True)
class JoinWaitlist:
    """Wait for an earlier window: before this moment, in this part of the day if named."""

    before: datetime
    part: str | None = None


@dataclass(frozen=True)
class LeaveWaitlist:
    """Stop waiting for an earlier window."""


@dataclass(frozen=True)
class TakeWaitlistOffer:
    """Book the window held for the customer by a waitlist offer."""

    offer_id: int


@dataclass(frozen=True)
class PassWaitlistOffer:
    """Let the held window go to the next customer who waits."""

    offer_id: int


@dataclass(frozen=True)
class SaveRating:
    stars: int | None
    text: str | None


@dataclass(frozen=True)
class SetLanguage:
    language: str


@dataclass(frozen=True)
class SetNotifications:
    enabled: bool


Command = (
    BookSlot | CancelVisit | SaveNote | OpenHandoff | SaveRating | SetLanguage | SetNotifications
    | JoinWaitlist | LeaveWaitlist | TakeWaitlistOffer | PassWaitlistOffer
)


# The conversation ----------------------------------------------------------------------------

RECENT_MESSAGES = 10


@dataclass(frozen=True)
class Conversation:
    """The stored state of one chat's dialogue."""

    state: State = State.IDLE
    language: str = "de"
    data: dict[str, Any] = field(default_factory=dict)
    last_activity: datetime | None = None

    def with_state(self, state: State, **data: Any) -> Conversation:
        """Return the conversation in a new state with these data (others kept)."""
        return replace(self, state=state, data={**self.data, **data})

    def remember(self, who: str, text: str, at: datetime | None = None,
                 intent: str | None = None) -> Conversation:
        """Keep the last messages (who, text, when, intent), for a person who takes over."""
        entry = [who, text[:500], at.isoformat() if at else None, intent]
        recent = [*self.data.get("recent", []), entry][-RECENT_MESSAGES:]
        return replace(self, data={**self.data, "recent": recent})


@dataclass(frozen=True)
class Step:
    """What the engine decided: replies to send, the new conversation, commands to run."""

    replies: tuple[Reply, ...]
    conversation: Conversation
    commands: tuple[Command, ...] = ()
