"""End to end: a customer asks for an earlier visit, another cancels, one tap takes the window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.app import Running, running_service
from bot.settings import load_settings
from tests.telegram.conftest import API_TOKEN
from tests.telegram.emulator import Customer, EmulatorRequest, buttons
from tests.telegram.test_end_to_end import said

pytestmark = [pytest.mark.emulator, pytest.mark.rasa, pytest.mark.slow]

EARLIER = {"de": "geht es auch früher?", "tr": "daha erken olur mu"}


@pytest.fixture
async def service(service_env: None, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    """The service with no quiet hours: the test runs at any hour, offers go out at once."""
    monkeypatch.setenv("TECHBOT_PUSHES__QUIET_HOURS_START", "00:00")
    monkeypatch.setenv("TECHBOT_PUSHES__QUIET_HOURS_END", "00:00")
    async with running_service(load_settings(), telegram_request=EmulatorRequest()) as running:
        yield running


@pytest.mark.parametrize("language", ["de", "tr"])
async def test_an_earlier_window_freed_by_a_cancellation_is_taken_with_one_tap(
    service: Running, emulator: str, language: str
) -> None:
    day = (datetime.now(UTC) + timedelta(days=3)).replace(hour=8, minute=0, second=0,
                                                          microsecond=0)
    early = (day, day + timedelta(hours=2))
    late = (day + timedelta(days=2), day + timedelta(days=2, hours=2))
    region = f"wl-{language}"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.api),
                                 base_url="http://ops", headers=headers) as ops:
        for start, end in (early, late):
            assert (await ops.put(f"/api/v1/capacity/{region}/{start.date().isoformat()}",
                                  json={"slots": [{"start": start.isoformat(),
                                                   "end": end.isoformat(), "capacity": 1}]})
                    ).status_code == 200

        async def order(number: str, window: tuple[datetime, datetime]) -> None:
            answer = await ops.put(f"/api/v1/orders/{number}", json={
                "customer": {"name": "Kunde", "postal_code": "10115", "language": language},
                "address": {"street": "Weg 3", "postal_code": "10115", "city": "Berlin"},
                "appointment": {"start": window[0].isoformat(), "end": window[1].isoformat()},
                "region": region})
            assert answer.status_code == 201

        waiter, leaver = ("63000001", "63000002") if language == "de" else ("63000003",
                                                                            "63000004")
        await order(waiter, late)
        await order(leaver, early)
        token = (await ops.post(f"/api/v1/orders/{waiter}/link")).json()["token"]
        customer = Customer(emulator, chat_id=7300 + len(language) * ord(language[0]),
                            language=language)
        await customer.link(token)
        await customer.say(EARLIER[language])
        answer = await customer.reply()
        if not any(p == "w:leave" for _, p in buttons(answer)):
            # No earlier window was free: the offer carries the waitlist button.
            join = next(p for _, p in buttons(answer) if p == "w:join")
            await customer.tap(join, message_id=answer["message_id"])
            answer = await customer.reply()
        assert any(p == "w:leave" for _, p in buttons(answer))  # on the waitlist
        assert (await ops.post(f"/api/v1/orders/{leaver}/events", json={
            "type": "cancelled", "reason": "customer called"})).status_code == 201
        offer = await customer.reply(wait=30)
        take = next(p for _, p in buttons(offer) if p.startswith("w:take:"))
        await customer.tap(take, message_id=offer["message_id"])
        done = await customer.reply()
        assert said(language, "Done: your visit is now booked for {window}. I will remind you "
                              "the evening before.") in done["text"]
        seen = (await ops.get(f"/api/v1/orders/{waiter}")).json()
        assert seen["booked_window"]["start"].startswith(early[0].date().isoformat())
        assert seen["waitlist"]["status"] == "done"
        assert seen["history"][-1]["reason"] == "an earlier window from the waitlist"
        await customer.close()
