"""The handoff webhook: every event posted to the operator's URL, signed, retried with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from datetime import timedelta
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool

from bot.pushes.sender import backoff
from bot.services import Services
from storage import handoffs as store
from storage.db import transaction

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=60)
TIMEOUT_SECONDS = 10.0


def signature(secret: str, body: bytes) -> str:
    """Return the X-Techbot-Signature of a body: HMAC-SHA256 under the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Posts handoff events to `handoff.webhook_url`, signed, retried with backoff."""

    def __init__(self, services: Services, client: httpx.AsyncClient | None = None) -> None:
        self.services = services
        self.url = services.settings.handoff.webhook_url
        self.secret = services.settings.require_handoff_webhook_secret() or ""
        self.client = client or httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        self.wake = asyncio.Event()

    def _claim(self) -> list[tuple[int, str, dict[str, Any], int]]:
        with transaction(self.services.sessions) as session:
            rows = store.claim_webhooks(session, now=self.services.clock(), lease=LEASE)
            return [(r.id, r.event, r.body, r.attempts) for r in rows]

    def _done(self, delivery_id: int, attempts: int, error: str | None) -> None:
        with transaction(self.services.sessions) as session:
            now = self.services.clock()
            store.webhook_done(session, delivery_id=delivery_id, now=now, error=error,
                               retry_at=now + timedelta(seconds=backoff(attempts + 1)),
                               max_attempts=self.services.settings.handoff.webhook_max_attempts)

    async def run_once(self) -> int:
        """Post the due events in order; return how many were tried."""
        due = await run_in_threadpool(self._claim)
        for delivery_id, event, body, attempts in due:
            raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            error: str | None = None
            try:
                answer = await self.client.post(self.url, content=raw, headers={
                    "Content-Type": "application/json", "X-Techbot-Event": event,
                    "X-Techbot-Delivery": str(delivery_id),
                    "X-Techbot-Signature": signature(self.secret, raw)})
                if answer.status_code >= 300:
                    error = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            if error:
                log.warning("handoff webhook: %s for event %s; retrying later", error, event)
            await run_in_threadpool(self._done, delivery_id, attempts, error)
        return len(due)

    async def run(self, stop: asyncio.Event, *, idle_seconds: float = 1.0) -> None:
        """Post until stopped."""
        try:
            while not stop.is_set():
                try:
                    tried = await self.run_once()
                except Exception:
                    log.exception("the handoff webhook failed; trying again shortly")
                    self.services.metrics.errors.labels("webhook").inc()
                    tried = 0
                if tried == 0:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), timeout=idle_seconds)
        finally:
            await self.client.aclose()
