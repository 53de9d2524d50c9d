"""The real service, in-process, against the Telegram emulator and the real Rasa server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from bot.app import Running, running_service
from bot.settings import load_settings
from nlu.project import RasaServer
from storage.db import make_engine, make_session_factory, transaction
from storage.demo import DemoResult, seed_demo
from storage.models import Base
from tests.telegram.emulator import BOT_TOKEN, EmulatorRequest, running_emulator

API_TOKEN = "e2e-api-token-0123456789"
WEBHOOK_SECRET = "e2e-webhook-secret-0123456789"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """Start the Bot API emulator once per test module."""
    if not (Path(__file__).parent.parent / "emulator" / "node_modules").exists():
        pytest.skip("the emulator is not installed: run `make emulator` (make test does)")
    with running_emulator() as url:
        yield url


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: str,
                rasa_server: RasaServer) -> None:
    """Point the service at the emulator, the Rasa server and a fresh database."""
    monkeypatch.setenv("TECHBOT_API__TOKEN", API_TOKEN)
    monkeypatch.setenv("TECHBOT_TELEGRAM__TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TECHBOT_TELEGRAM__BASE_URL", emulator)
    monkeypatch.setenv("TECHBOT_TELEGRAM__POLL_INTERVAL_SECONDS", "0.05")
    monkeypatch.setenv("TECHBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TECHBOT_NLU__URL", rasa_server.url)


@pytest.fixture
async def service(service_env: None) -> AsyncIterator[Running]:
    """Run the service in polling mode for one test."""
    async with running_service(load_settings(), telegram_request=EmulatorRequest()) as running:
        yield running


@pytest.fixture
def demo(service: Running) -> DemoResult:
    """Load the demo orders; their link tokens bind chats."""
    with transaction(service.services.sessions) as session:
        return seed_demo(session, now=service.services.clock(), link_ttl=timedelta(hours=1))


@pytest.fixture
def sessions_of(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Yield a session factory on the test database, emptied first (other tests leave rows)."""
    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield make_session_factory(engine)
    engine.dispose()
