"""Factories for the engine's plain inputs: views, slots, parsed messages."""

from __future__ import annotations

import gettext
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from dialogues.engine import step
from dialogues.model import (
    ButtonPress,
    Conversation,
    Incoming,
    OrderView,
    Rules,
    SlotView,
    Step,
    TextMessage,
)
from dialogues.texts import Texts
from nlu.types import Entity, Parsed
from tests.conftest import NOW

TOMORROW_9 = datetime(2026, 11, 24, 8, 0, tzinfo=NOW.tzinfo)  # 09:00 in Berlin


def english(language: str) -> Texts:
    """Return texts that speak the msgids (English), whatever the language."""
    return Texts(language, gettext.NullTranslations())


def make_slots(days: int = 5, first: datetime = TOMORROW_9, start_id: int = 100
               ) -> tuple[SlotView, ...]:
    """Return four two-hour windows a day, 09-17 Berlin time, for some days."""
    slots = []
    for day in range(days):
        for index in range(4):
            start = first + timedelta(days=day, hours=2 * index)
            slots.append(SlotView(start_id + 4 * day + index, start, start + timedelta(hours=2)))
    return tuple(slots)


def make_view(**changes: Any) -> OrderView:
    """Return an order booked tomorrow 09-11 with a technician and free slots."""
    view = OrderView(
        number="40000001", status="scheduled", timezone="Europe/Berlin",
        window_start=TOMORROW_9, window_end=TOMORROW_9 + timedelta(hours=2),
        technician_name="Jonas Becker", code_word="Kranich", slot_id=100,
        monthly_fee_cents=4995, load_free_slots=make_slots,
    )
    for name in ("prediction", "free_slots"):  # given as values, read as the engine reads them
        if name in changes:
            changes[f"load_{name}"] = (lambda value: lambda: value)(changes.pop(name))
    return replace(view, **changes)


def said(intent: str, text: str = "", language: str = "en", confidence: float = 0.9,
         entities: dict[str, str] | None = None) -> TextMessage:
    """Return a text message the NLU understood as this intent."""
    found = tuple(Entity(k, v) for k, v in (entities or {}).items())
    return TextMessage(text or intent, Parsed(intent, confidence, found, language))


def tap(payload: str) -> ButtonPress:
    """Return a button press."""
    return ButtonPress(payload)


def run(conversation: Conversation, incoming: Incoming, view: OrderView | None = None,
        now: datetime = NOW, rules: Rules | None = None) -> Step:
    """Run one engine step with English texts."""
    return step(conversation, incoming, view or make_view(), now, rules=rules or Rules(),
                texts_for=english)
