"""The demo's past visits teach the arrival model and, judged, give it its track record."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.arrivals import backtest, predict_for_order
from bot.services import Services
from bot.turns import run_turn
from dialogues.model import TextMessage
from nlu.types import Parsed
from storage.chats import ensure_chat, link_chat
from storage.db import transaction
from storage.demo import seed_demo
from storage.orders import require_order

BERLIN = ZoneInfo("Europe/Berlin")
# Wednesday 18:05 in Berlin: the demo visit 40000001 is tomorrow, 09:00–11:00.
EVENING = datetime(2026, 12, 2, 18, 5, tzinfo=BERLIN)


def _seeded(services: Services, *, history: bool) -> Services:
    at = replace(services, clock=lambda: EVENING)
    with transaction(at.sessions) as session:
        result = seed_demo(session, now=EVENING, link_ttl=timedelta(hours=1))
        if history:
            assert len(result.history) == 240  # 3 technicians × 20 days × 4 visits
            assert backtest(session, services=at, order_ids=result.history) > 1000
        else:
            assert backtest(session, services=at, order_ids=[]) == 0
        again = seed_demo(session, now=EVENING, link_ttl=timedelta(hours=1))
        assert again.history == []  # history is seeded once
    return at


def _window(services: Services, number: str) -> tuple[datetime, datetime]:
    with transaction(services.sessions) as session:
        order = require_order(session, number=number)
        predicted = predict_for_order(session, order=order, services=services, now=EVENING)
        assert predicted is not None
        return predicted.window_start, predicted.window_end


def test_judged_history_narrows_the_evening_before_only_as_far_as_it_held(
        services: Services) -> None:
    at = _seeded(services, history=True)
    start, end = _window(at, "40000001")
    booked = (datetime(2026, 12, 3, 9, tzinfo=BERLIN), datetime(2026, 12, 3, 11, tzinfo=BERLIN))
    assert at.learned.model is not None and at.learned.model.visits == 240
    assert at.learned.calibration.trusts(15 * 60, 0)
    assert booked[0] <= start < end <= booked[1]
    assert end - start < booked[1] - booked[0]  # it held the evening before: narrower


def test_without_a_track_record_the_evening_before_tells_the_booked_window(
        services: Services) -> None:
    at = _seeded(services, history=False)
    start, end = _window(at, "40000001")
    assert (start, end) == (datetime(2026, 12, 3, 9, tzinfo=BERLIN),
                            datetime(2026, 12, 3, 11, tzinfo=BERLIN))
    with transaction(at.sessions) as session:
        order = require_order(session, number="40000001")
        chat = ensure_chat(session, chat_key="tg:7", telegram_chat_id=7, now=EVENING)
        link_chat(session, chat=chat, order=order)
        order_id = order.id
    replies = run_turn(at, chat_key="tg:7", order_id=order_id, fallback_language="de",
                       incoming=TextMessage("wann kommt der techniker",
                                            Parsed("ask_status", 0.9, (), "de")))
    text = replies[-1].text
    assert "morgen" in text and "heute" not in text, text
    assert "09:00" in text and "11:00" in text, text
