"""The ops API under schemathesis: no 5xx for anything the schema allows, and no way in
without the token."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from bot.api.routes import build_api
from bot.app import build_services
from bot.settings import load_settings
from tests.conftest import API_TOKEN


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Serve the API on a fresh SQLite database and load its OpenAPI schema."""
    data = tmp_path_factory.mktemp("fuzz")
    patch = pytest.MonkeyPatch()
    patch.setenv("TECHBOT_API__TOKEN", API_TOKEN)
    patch.setenv("TECHBOT_DATA_DIR", str(Path(data)))
    services = build_services(load_settings())
    app = build_api(services)
    yield schemathesis.openapi.from_asgi("/api/openapi.json", app)
    services.engine.dispose()
    patch.undo()


def _operations(schema: object) -> list[object]:
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[attr-defined]


def test_no_server_error_with_the_token(api_schema: object) -> None:
    operations = _operations(api_schema)
    assert len(operations) >= 8
    seen: Counter[int] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy())  # type: ignore[attr-defined]
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {API_TOKEN}"})
            seen[response.status_code] += 1
            assert response.status_code < 500, (case.method, case.path, response.text)

        check()
    # Both valid and invalid requests were made, and nothing answered 5xx.
    assert seen[422] > 0 and sum(seen[c] for c in (200, 201, 202)) > 0, seen


def test_every_route_refuses_a_missing_or_wrong_token(api_schema: object) -> None:
    for operation in _operations(api_schema):
        if not operation.path.startswith("/api/"):  # type: ignore[attr-defined]
            continue

        @given(case=operation.as_strategy())  # type: ignore[attr-defined]
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            wrong = case.call(headers={"Authorization": "Bearer not-the-token"})
            case.headers = {k: v for k, v in (case.headers or {}).items()
                            if k.lower() != "authorization"}
            assert (wrong.status_code, case.call().status_code) == (401, 401)

        check()
