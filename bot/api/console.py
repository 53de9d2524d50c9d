"""The agent console: one static page that talks to the handoff routes of the ops API."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = Path(__file__).resolve().parent / "console" / "index.html"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def content_security_policy(html: str) -> str:
    """Allow the page's own inline script and style (by hash) and requests to itself only."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    # Hashes rather than 'unsafe-inline': the page shows customers' text, and should any of it
    # ever become markup, a script injected with it still would not run.
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' {' '.join(hashes['script'])}",
        f"style-src 'self' {' '.join(hashes['style'])}",
        "img-src 'self'", "connect-src 'self'",
        "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ])


def console_router() -> APIRouter:
    """Serve the agent console at /console; the page holds no data, so it needs no token."""
    html = PAGE.read_text(encoding="utf-8")
    headers = {
        # A stale page after a deploy would talk to routes that changed under it.
        "Cache-Control": "no-store",
        "Content-Security-Policy": content_security_policy(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    router = APIRouter()

    @router.get("/console", include_in_schema=False)
    async def console() -> HTMLResponse:
        """Return the console page."""
        return HTMLResponse(html, headers=headers)

    return router
