"""Fixtures for the edge: services on the test database and an ops API client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.api import build_api
from bot.services import Services
from bot.settings import Settings, load_settings
from tests.conftest import NOW

API_TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Return settings with an API token, as the service would have them."""
    monkeypatch.setenv("TECHBOT_API__TOKEN", API_TOKEN)
    return load_settings()


@pytest.fixture
def services(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> Services:
    """Return the services on the test database with a fixed clock."""
    return Services(settings=settings, engine=engine, sessions=sessions, clock=lambda: NOW)


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    """Yield an authorised client of the ops API."""
    with TestClient(build_api(services), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield client
