"""End to end: a dispatch event through the ops API becomes a push on the customer's phone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from bot.app import Running
from dialogues.texts import Texts
from locales import load_catalog
from tests.telegram.conftest import API_TOKEN
from tests.telegram.emulator import Customer

pytestmark = [pytest.mark.emulator, pytest.mark.rasa, pytest.mark.slow]


@pytest.mark.parametrize("language", ["tr", "ar"])
async def test_an_eta_19_minutes_out_is_pushed_once_as_20_minutes_away(
    service: Running, emulator: str, language: str
) -> None:
    now = service.services.clock()
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    transport = httpx.ASGITransport(app=service.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://ops",
                                 headers=headers) as ops:
        number = "61000001" if language == "tr" else "61000002"
        start = (now - timedelta(minutes=30)).isoformat()
        end = (now + timedelta(minutes=90)).isoformat()
        await ops.put("/api/v1/technicians/T-7", json={"name": "Ayşe Demir"})
        created = await ops.put(f"/api/v1/orders/{number}", json={
            "customer": {"name": "Kunde", "postal_code": "12045", "language": language},
            "address": {"street": "Sonnenallee 1", "postal_code": "12045", "city": "Berlin"},
            "appointment": {"start": start, "end": end}, "technician_id": "T-7"})
        assert created.status_code == 201
        token = (await ops.post(f"/api/v1/orders/{number}/link")).json()["token"]
        customer = Customer(emulator, chat_id=4000 + len(language) + ord(language[0]),
                            language=language)
        await customer.link(token)
        eta = (now + timedelta(minutes=19)).isoformat()
        for _ in range(2):  # the dispatcher repeats itself; the customer hears it once
            answer = await ops.post(f"/api/v1/orders/{number}/events",
                                    json={"type": "eta", "eta": eta})
            assert answer.status_code == 201
        push = await customer.reply(wait=10)
        expected = Texts(language, load_catalog(language)).plural(
            "Your technician {name} is about {count} minute away.",
            "Your technician {name} is about {count} minutes away.", 20, name="Ayşe")
        assert push["text"] == expected
        await asyncio.sleep(2)
        with pytest.raises(AssertionError):
            await customer.replies(1, wait=1)  # nothing more: exactly once
        view = (await ops.get(f"/api/v1/orders/{number}")).json()
        assert [(n["kind"], n["status"]) for n in view["notifications"]] == [
            ("eta_near", "sent")]
        await customer.close()
