"""End to end: customers on the emulator, the real bot, the real NLU model, real storage."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from bot.app import Running, running_service
from bot.settings import load_settings
from dialogues.texts import Texts
from locales import load_catalog
from storage.chats import create_link_token
from storage.db import transaction
from storage.demo import DemoResult
from storage.models import Chat, Order
from storage.orders import require_order
from tests.telegram.conftest import WEBHOOK_SECRET
from tests.telegram.emulator import Customer, EmulatorRequest, buttons

pytestmark = [pytest.mark.emulator, pytest.mark.rasa, pytest.mark.slow]

PHRASES = {  # status question, wish to move, in each language
    "de": ("wann kommt der techniker", "ich muss den termin verschieben"),
    "en": ("when is the technician coming", "i need to reschedule"),
    "tr": ("teknisyen ne zaman gelecek", "randevuyu ertelemek istiyorum"),
    "ru": ("когда придет мастер", "хочу перенести визит"),
    "ar": ("متى يجي الفني", "بدي أأجل الموعد"),
}


ASK_FOR_ORDER = ("To tell you about your visit I need your order. Please send your order number "
                 "and postal code, for example “{example}”, or open the link from your "
                 "appointment confirmation.")


def said(language: str, message: str) -> str:
    """Return the fixed start of a catalog message in a language (before its first value)."""
    return Texts(language, load_catalog(language))(message).split("{")[0].strip()


def token_of(demo: DemoResult, language: str) -> tuple[str, str]:
    number, _, token = next(o for o in demo.orders if o[1] == language)
    return number, token


@pytest.mark.parametrize("language", sorted(PHRASES))
async def test_link_status_move_by_button_and_status_again(
    service: Running, demo: DemoResult, emulator: str, language: str
) -> None:
    number, token = token_of(demo, language)
    customer = Customer(emulator, chat_id=1000 + sorted(PHRASES).index(language),
                        language=language)
    status_question, move = PHRASES[language]
    assert number in (await customer.link(token))["text"]
    await customer.say(status_question)
    assert said(language, "Your visit is booked for {window}.") in (await customer.reply())["text"]
    await customer.say(move)
    offer = await customer.reply()
    slot_buttons = [b for b in buttons(offer) if b[1].startswith("s:")]
    assert len(slot_buttons) >= 3
    await customer.tap(slot_buttons[1][1], message_id=offer["message_id"])
    question = await customer.reply()
    yes = buttons(question)[0][1]
    await customer.tap(yes, message_id=question["message_id"])
    done = await customer.reply()
    assert said(language, "Done: your visit is now booked for {window}. I will remind you the "
                          "evening before.") in done["text"]
    await customer.say(status_question)
    status = (await customer.reply())["text"]
    chosen_window = slot_buttons[1][0].split(". ", 1)[1]
    assert chosen_window in status
    with transaction(service.services.sessions) as session:
        assert require_order(session, number=number).moves == 1
    await customer.close()


async def test_a_forged_or_stale_callback_changes_nothing(
    service: Running, demo: DemoResult, emulator: str
) -> None:
    number, token = token_of(demo, "de")
    customer = Customer(emulator, chat_id=2001)
    await customer.link(token)
    for payload in ("s:99:1", "y:12345", "r:9", "o:40000009", "zz:top", "x" * 64):
        await customer.tap(payload)
        answer = await customer.reply()
        assert said("de", "This offer has expired. Here is what I can do now:") in answer["text"] \
            or "40000009" not in answer["text"]
    with transaction(service.services.sessions) as session:
        order = require_order(session, number=number)
        assert order.moves == 0 and order.status == "scheduled"
        chat = session.query(Chat).filter_by(chat_key="tg:2001").one()
        assert chat.order_id == order.id  # o:40000009 did not switch to someone else's order
    await customer.close()


async def test_used_and_expired_tokens_get_a_clear_answer(
    service: Running, demo: DemoResult, emulator: str
) -> None:
    _, token = token_of(demo, "en")
    first, second = Customer(emulator, chat_id=2002, language="en"), Customer(
        emulator, chat_id=2003, language="en")
    await first.link(token)
    assert said("en", "This link has already been used.") in (await second.link(token))["text"]
    with transaction(service.services.sessions) as session:
        order = session.query(Order).first()
        expired = create_link_token(session, order_id=order.id, ttl=timedelta(seconds=-1),
                                    now=service.services.clock())
    assert said("en", "This link has expired.") in (await second.link(expired))["text"]
    await second.say("/start not-a-token")
    assert said("en", "This link is not valid.") in (await second.reply())["text"]
    await first.close()
    await second.close()


async def test_identification_by_number_and_postal_code_locks_after_five_misses(
    service: Running, demo: DemoResult, emulator: str
) -> None:
    customer = Customer(emulator, chat_id=2004)
    for attempt in range(5):
        await customer.say(f"40000001 9999{attempt}")
        text = (await customer.reply())["text"]
        assert "40000001" not in text  # never says whether the order exists
    await customer.say("40000001 10119")  # now right, but the chat is locked for an hour
    assert said("de", "Too many attempts. Please try again in an hour, or open the link from "
                          "your appointment confirmation.") in (await customer.reply())["text"]
    other = Customer(emulator, chat_id=2005)
    await other.say("mein auftrag 40000001, plz 10119")
    assert "40000001" in (await other.reply())["text"]
    await customer.close()
    await other.close()


async def test_two_customers_in_parallel_each_get_their_own_answers(
    service: Running, demo: DemoResult, emulator: str
) -> None:
    (n1, t1), (n2, t2) = token_of(demo, "de"), token_of(demo, "en")
    a, b = Customer(emulator, chat_id=2006), Customer(emulator, chat_id=2007, language="en")

    async def conversation(customer: Customer, token: str, question: str) -> list[str]:
        await customer.link(token)
        texts = []
        for _ in range(3):
            await customer.say(question)
            texts.append((await customer.reply())["text"])
        return texts

    texts_a, texts_b = await asyncio.gather(
        conversation(a, t1, "wann kommt der techniker"),
        conversation(b, t2, "when is the technician coming"))
    with transaction(service.services.sessions) as session:
        window_a = require_order(session, number=n1)
        window_b = require_order(session, number=n2)
        streets = window_a.street, window_b.street
    assert all(said("de", "Your visit is booked for {window}.") in t for t in texts_a)
    assert all(said("en", "Your visit is booked for {window}.") in t for t in texts_b)
    assert not any(streets[1] in t or n2 in t for t in texts_a)
    assert not any(streets[0] in t or n1 in t for t in texts_b)
    await a.close()
    await b.close()


async def test_photos_groups_and_unknown_chats_are_answered(
    service: Running, demo: DemoResult, emulator: str
) -> None:
    customer = Customer(emulator, chat_id=2008)
    await customer.say("hallo")
    assert said("de", ASK_FOR_ORDER) in (
        await customer.reply())["text"]
    await customer.send_raw({"text": None, "sticker": {"file_id": "x", "file_unique_id": "y",
                                                       "width": 1, "height": 1,
                                                       "is_animated": False,
                                                       "is_video": False, "type": "regular"}})
    only_text = said("de", "I can only read text messages. Please write to me, or use the buttons.")
    assert only_text in (await customer.reply())["text"]
    await customer.close()


async def test_webhook_mode_checks_the_secret(
    service_env: None, monkeypatch: pytest.MonkeyPatch, emulator: str
) -> None:
    monkeypatch.setenv("TECHBOT_TELEGRAM__MODE", "webhook")
    monkeypatch.setenv("TECHBOT_TELEGRAM__WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("TECHBOT_TELEGRAM__WEBHOOK_URL", "http://127.0.0.1:1")
    update = {"update_id": 1, "message": {
        "message_id": 1, "date": 1_760_000_000, "text": "hallo",
        "chat": {"id": 3001, "type": "private", "first_name": "K"},
        "from": {"id": 3001, "is_bot": False, "first_name": "K", "language_code": "de"}}}
    async with running_service(load_settings(), telegram_request=EmulatorRequest()) as running:
        transport = httpx.ASGITransport(app=running.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
            refused = await http.post("/telegram/webhook", json=update)
            wrong = await http.post("/telegram/webhook", json=update,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
            accepted = await http.post("/telegram/webhook", json=update,
                                       headers={"X-Telegram-Bot-Api-Secret-Token":
                                                WEBHOOK_SECRET})
        assert (refused.status_code, wrong.status_code, accepted.status_code) == (403, 403, 200)
        customer = Customer(emulator, chat_id=3001)
        answer = await customer.reply()  # the update went through the bot; its reply to Telegram
        assert said("de", ASK_FOR_ORDER) in answer["text"]
        await customer.close()


async def test_chat_commands_stop_start_language_help_and_delete(
    service: Running, demo: DemoResult, emulator: str
) -> None:
    number, token = token_of(demo, "de")
    customer = Customer(emulator, chat_id=2010)
    await customer.link(token)
    await customer.say("/stop")
    assert "/start" in (await customer.reply())["text"]
    with transaction(service.services.sessions) as session:
        assert not session.query(Chat).filter_by(chat_key="tg:2010").one().notifications_enabled
    await customer.say("/start")
    await customer.reply()
    with transaction(service.services.sessions) as session:
        assert session.query(Chat).filter_by(chat_key="tg:2010").one().notifications_enabled
    await customer.say("/language")
    languages = await customer.reply()
    assert ("Türkçe", "l:tr") in buttons(languages)
    await customer.tap("l:tr", message_id=languages["message_id"])
    assert said("tr", "From now on I will write in English.") in (await customer.reply())["text"]
    await customer.say("/help")
    assert "Almanca, İngilizce, Türkçe, Rusça veya Arapça" in (await customer.reply())["text"]
    await customer.say("/delete")
    question = await customer.reply()
    assert [p for _, p in buttons(question)] == ["d:yes", "d:no"]
    await customer.tap("d:yes", message_id=question["message_id"])
    await customer.reply()
    with transaction(service.services.sessions) as session:
        assert session.query(Chat).filter_by(chat_key="tg:2010").one_or_none() is None
        assert require_order(session, number=number).status == "scheduled"  # order untouched
    await customer.say("wann kommt der techniker")  # forgotten: asked to identify again
    assert said("tr", ASK_FOR_ORDER) in (await customer.reply())["text"] or said(
        "de", ASK_FOR_ORDER) in customer.inbox[-1]["text"]
    await customer.close()
