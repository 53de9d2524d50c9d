"""Async client of the Rasa NLU server: one keep-alive connection, a timeout, graceful failure."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from nlu.language import LanguageIdentifier
from nlu.normalize import normalize
from nlu.types import NOT_UNDERSTOOD, Entity, Parsed

log = logging.getLogger(__name__)

class FailureCounter(Protocol):
    """Where the client reports failures (the service's metrics)."""

    def failed(self, reason: str) -> None: ...
    def up(self, available: bool) -> None: ...


class _NoMetrics:
    def failed(self, reason: str) -> None:
        pass

    def up(self, available: bool) -> None:
        pass


@dataclass
class NluClient:
    """Parse customer messages through a Rasa server; never raise, never hang."""

    url: str
    timeout: float = 2.0
    fallback_threshold: float = 0.5
    metrics: FailureCounter = field(default_factory=_NoMetrics)
    languages: LanguageIdentifier = field(default_factory=LanguageIdentifier)
    _http: httpx.AsyncClient | None = None
    _down: bool = False
    last_answer: float | None = None  # monotonic time of the last parse that came back

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.url.rstrip("/"),
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_keepalive_connections=32, max_connections=64),
            )
        return self._http

    async def close(self) -> None:
        """Close the HTTP connection."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def parse(
        self, text: str, *, current_language: str | None = None, hint: str | None = None
    ) -> Parsed:
        """Return the intent, entities and language of a message."""
        language = self.languages.identify(text, current=current_language, hint=hint)
        normalised = normalize(text)
        if not normalised:
            return Parsed(NOT_UNDERSTOOD, 0.0, (), language)
        try:
            response = await self._client().post("/model/parse", json={"text": normalised})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._mark_down(type(exc).__name__)
            return Parsed(NOT_UNDERSTOOD, 0.0, (), language, available=False)
        self._mark_up()
        return self._to_parsed(body, language)

    def _to_parsed(self, body: dict[str, Any], language: str) -> Parsed:
        intent = body.get("intent") or {}
        name = str(intent.get("name") or NOT_UNDERSTOOD)
        confidence = float(intent.get("confidence") or 0.0)
        if name == NOT_UNDERSTOOD:
            # The fallback hides the model's guess; its runner-up ranking still has it.
            ranking = [r for r in body.get("intent_ranking") or [] if r.get("name") != name]
            confidence = float(ranking[0]["confidence"]) if ranking else 0.0
            name = NOT_UNDERSTOOD
        elif confidence < self.fallback_threshold:
            name = NOT_UNDERSTOOD
        entities: list[Entity] = []
        for item in body.get("entities") or []:
            entity = Entity(str(item.get("entity")), str(item.get("value")))
            if entity not in entities:
                entities.append(entity)
        return Parsed(name, confidence, tuple(entities), language)

    def _mark_down(self, reason: str) -> None:
        self.metrics.failed(reason)
        self.metrics.up(False)
        if not self._down:
            log.warning("NLU server at %s unavailable (%s); answering with buttons until it "
                        "returns", self.url, reason)
        self._down = True

    def _mark_up(self) -> None:
        if self._down:
            log.info("NLU server at %s answers again", self.url)
        self._down = False
        self.last_answer = time.monotonic()
        self.metrics.up(True)

    def answered_within(self, seconds: float) -> bool:
        """Say whether a parse succeeded this recently (a busy server still answers)."""
        return (not self._down and self.last_answer is not None
                and time.monotonic() - self.last_answer <= seconds)
