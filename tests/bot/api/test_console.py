"""The agent console page: served without a token, never cached, locked down by its CSP."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.api.console import console_router

IDS = ("token", "agent", "connect", "status", "language", "list", "transcript", "order",
       "message", "send", "close-note", "close", "claim", "error")


def test_page_is_served() -> None:
    app = FastAPI()
    app.include_router(console_router())
    with TestClient(app) as client:
        response = client.get("/console")
        spec = client.get("/openapi.json").json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    for element in IDS:
        assert f'id="{element}"' in html, element
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    script = re.search(r"<script>(.*?)</script>", html, re.DOTALL)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}'" in policy
    assert "/console" not in spec["paths"]


def test_page_loads_nothing_from_outside_and_writes_no_markup() -> None:
    app = FastAPI()
    app.include_router(console_router())
    with TestClient(app) as client:
        html = client.get("/console").text
    assert not re.search(r"(src|href)=|https?://|@import|url\(", html)
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html
    assert len(html.splitlines()) < 400
