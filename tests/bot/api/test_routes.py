"""The ops API: every route with and without token, bad bodies, unknown orders, idempotent PUTs."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.api.routes import build_api
from bot.services import Services

ORDER = {
    "customer": {"name": "Katrin Schulz", "postal_code": "10119", "language": "de",
                 "phone": "+49 171 5550123"},
    "address": {"street": "Torstraße 12", "postal_code": "10119", "city": "Berlin",
                "lat": 52.529, "lon": 13.401},
    "appointment": {"start": "2026-11-24T09:00:00+01:00", "end": "2026-11-24T11:00:00+01:00"},
    "region": "berlin-mitte",
}
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("PUT", "/api/v1/orders/40000001", ORDER),
    ("GET", "/api/v1/orders/40000001", None),
    ("POST", "/api/v1/orders/40000001/link", None),
    ("POST", "/api/v1/orders/40000001/events", {"type": "en_route"}),
    ("PUT", "/api/v1/technicians/T-1", {"name": "Jonas Becker", "code_word": "Kranich"}),
    ("PUT", "/api/v1/technicians/T-1/route/2026-11-24",
     {"stops": [{"order": "40000001", "planned_minutes": 60}]}),
    ("POST", "/api/v1/technicians/T-1/position",
     {"lat": 52.5, "lon": 13.4, "at": "2026-11-24T08:30:00+01:00"}),
    ("PUT", "/api/v1/capacity/berlin-mitte/2026-11-24",
     {"slots": [{"start": "2026-11-24T09:00:00+01:00", "end": "2026-11-24T11:00:00+01:00",
                 "capacity": 3}]}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", "Basic abc", "Bearer "])
def test_every_route_refuses_a_missing_or_wrong_token(
    api: TestClient, method: str, path: str, body: dict[str, Any] | None, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    api.headers.pop("Authorization")
    response = api.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert "TECHBOT_API__TOKEN" in response.json()["detail"]


def test_the_whole_flow_of_a_dispatch_day(api: TestClient) -> None:
    capacity = api.put(*ROUTES[7][1:2], json=ROUTES[7][2])
    assert capacity.status_code == 200 and capacity.json()["slots"][0]["booked"] == 0
    created = api.put("/api/v1/orders/40000001", json=ORDER)
    assert created.status_code == 201
    view = created.json()
    assert view["booked_window"] == {"start": "2026-11-24T09:00:00+01:00",
                                     "end": "2026-11-24T11:00:00+01:00"}
    assert view["status"] == "scheduled"
    again = api.put("/api/v1/orders/40000001", json=ORDER)
    assert again.status_code == 200 and len(again.json()["history"]) == 1  # idempotent
    assert api.put("/api/v1/technicians/T-1", json=ROUTES[4][2]).status_code == 201
    assert api.put("/api/v1/technicians/T-1", json=ROUTES[4][2]).status_code == 200
    route = api.put(ROUTES[5][1], json=ROUTES[5][2])
    assert route.json() == {"technician": "T-1", "day": "2026-11-24", "stops": 1}
    assert api.post(ROUTES[6][1], json=ROUTES[6][2]).json()["kept"] is True
    event = api.post("/api/v1/orders/40000001/events",
                     json={"type": "eta", "eta": "2026-11-24T09:40:00+01:00",
                           "reason": "Stau"})
    assert event.status_code == 201 and event.json()["status"] == "scheduled"
    view = api.get("/api/v1/orders/40000001").json()
    assert view["eta"] == "2026-11-24T09:40:00+01:00"
    assert view["predicted"]["eta"] == "2026-11-24T09:40:00+01:00"
    assert view["predicted"]["window"]["end"] == "2026-11-24T10:00:00+01:00"
    assert view["route_stop"] == {"technician": "T-1", "day": "2026-11-24", "position": 1,
                                  "of": 1}
    assert view["technician"] == {"id": "T-1", "name": "Jonas Becker"}
    link = api.post("/api/v1/orders/40000001/link").json()
    assert link["link"].endswith(f"?start={link['token']}")
    slots = api.put(*ROUTES[7][1:2], json=ROUTES[7][2]).json()["slots"]
    assert slots[0]["booked"] == 1  # the order's window sits in that slot


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/v1/orders/99999999", None),
    ("POST", "/api/v1/orders/99999999/link", None),
    ("POST", "/api/v1/orders/99999999/events", {"type": "arrived"}),
])
def test_unknown_orders_are_404(api: TestClient, method: str, path: str,
                                body: dict[str, Any] | None) -> None:
    response = api.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown order"}


def test_unknown_technician_is_404(api: TestClient) -> None:
    response = api.post("/api/v1/technicians/ghost/position",
                        json={"lat": 1, "lon": 1, "at": "2026-11-24T08:30:00+01:00"})
    assert response.status_code == 404


def _field_errors(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [".".join(str(p) for p in e["loc"]) for e in response.json()["detail"]]


@pytest.mark.parametrize(("change", "field"), [
    ({"customer": {"name": "", "postal_code": "10119"}}, "body.customer.name"),
    ({"customer": {"name": "A", "postal_code": "<script>"}}, "body.customer.postal_code"),
    ({"customer": {"name": "A\x00B", "postal_code": "10119"}}, "body.customer.name"),
    ({"customer": {"name": "A", "postal_code": "10119", "language": "fr"}},
     "body.customer.language"),
    ({"address": {**ORDER["address"], "lat": 123}}, "body.address.lat"),
    ({"appointment": {"start": "2026-11-24T09:00:00", "end": "2026-11-24T11:00:00+01:00"}},
     "body.appointment.start"),
    ({"appointment": {"start": "2026-11-24T11:00:00+01:00", "end": "2026-11-24T09:00:00+01:00"}},
     "body.appointment"),
    ({"timezone": "Mars/Olympus"}, "body.timezone"),
    ({"technician_id": "T-404"}, "body.technician_id"),
    ({"surprise": 1}, "body.surprise"),
])
def test_bad_order_bodies_name_the_field(api: TestClient, change: dict[str, Any],
                                         field: str) -> None:
    errors = _field_errors(api.put("/api/v1/orders/40000001", json={**ORDER, **change}))
    assert any(e.startswith(field) for e in errors), errors


def test_bad_paths_and_other_bodies_are_422(api: TestClient) -> None:
    assert api.put("/api/v1/orders/40000001", json=ORDER).status_code == 201
    api.put("/api/v1/technicians/T-1", json={"name": "Jonas"})
    assert _field_errors(api.get("/api/v1/orders/not%20a%20number"))[0].startswith("path")
    assert _field_errors(api.post("/api/v1/orders/40000001/events", json={"type": "eta"})) == [
        "body.eta"]
    assert _field_errors(api.post("/api/v1/orders/40000001/events", json={"type": "boom"}))
    assert _field_errors(api.put("/api/v1/technicians/T-1/route/2026-11-24",
                                 json={"stops": [{"order": "12345678", "planned_minutes": 5}]}
                                 )) == ["body.stops"]
    assert _field_errors(api.put("/api/v1/technicians/T-1/route/2026-13-45", json={"stops": []}))
    assert _field_errors(api.put("/api/v1/capacity/r/2026-11-25", json=ROUTES[7][2])) == [
        "body.slots.0.start"]
    assert _field_errors(api.put("/api/v1/orders/40000001", content=b"{not json",
                                 headers={"Content-Type": "application/json"}))


def test_health_metrics_and_openapi(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok", "database": "ok"}
    api.get("/api/v1/orders/99999999")
    metrics = api.get("/metrics").text
    assert 'techbot_http_requests_total{route="/api/v1/orders/{number}",status="404"}' in metrics
    spec = api.get("/api/openapi.json").json()
    assert "/api/v1/orders/{number}/events" in spec["paths"]


def test_readiness_names_each_part_that_is_not_ready(services: Services) -> None:
    parts = {"nlu": False, "telegram": True}

    async def readiness() -> dict[str, bool]:
        return dict(parts)

    with TestClient(build_api(services, readiness=readiness)) as client:
        booting = client.get("/readyz")
        assert booting.status_code == 503
        assert booting.json() == {"status": "not ready", "database": "ok", "nlu": "not ready",
                                  "telegram": "ok"}
        assert client.get("/healthz").status_code == 200  # alive all the same
        parts["nlu"] = True
        assert client.get("/readyz").json()["status"] == "ready"
    with TestClient(build_api(services)) as alone:
        assert alone.get("/readyz").json() == {"status": "ready", "database": "ok"}
