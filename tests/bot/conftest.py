"""Fixtures for the edge: services on the test database and an ops API client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bot.api.routes import build_api
from bot.services import Services
from tests.conftest import API_TOKEN


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    """Yield an authorised client of the ops API."""
    with TestClient(build_api(services), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield client
