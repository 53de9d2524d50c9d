"""Async client of the Rasa NLU servers: a fair queue, a few requests in flight per server,
a dead server skipped and tried again later, graceful failure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from nlu.language import LanguageIdentifier
from nlu.normalize import normalize
from nlu.types import NOT_UNDERSTOOD, Entity, Parsed

log = logging.getLogger(__name__)

# A Rasa server parses one message at a time on its event loop. A second request in flight
# lets it start the next parse while the first answer travels back; more only moves the queue
# from our FIFO into Sanic, which does not serve in arrival order (docs/BENCHMARKS.md §1).
IN_FLIGHT = 2
# A dead server is skipped while another answers, and tried again after this pause, doubled on
# each failure up to RETRY_MAX_SECONDS.
RETRY_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


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
class _Server:
    """One NLU server as the client sees it."""

    url: str
    in_flight: int = 0
    failures: int = 0  # in a row; sets the pause before the next try
    retry_at: float = 0.0  # monotonic; a down server gets one probe from then on
    answered_at: float = float("-inf")  # monotonic time of its last answer

    @property
    def down(self) -> bool:
        """Say whether its last request failed."""
        return self.failures > 0


@dataclass(frozen=True)
class _Turn:
    """A request waiting for a server, and the servers it already failed on."""

    server: asyncio.Future[_Server]
    tried: frozenset[str]


class _ServerFailed(Exception):
    """The request's server failed; another may answer it."""

    def __init__(self, reason: str, *, server_dead: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.server_dead = server_dead


class _NoAnswer(Exception):
    """No server answered the parse in time; the message says why."""


class NluClient:
    """Parse customer messages through one or more Rasa servers; never raise, never hang."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        timeout: float = 2.0,
        fallback_threshold: float = 0.5,
        metrics: FailureCounter | None = None,
        languages: LanguageIdentifier | None = None,
        in_flight: int = IN_FLIGHT,
        retry_seconds: float = RETRY_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        listed = [urls] if isinstance(urls, str) else urls
        self.urls = tuple(dict.fromkeys(url.rstrip("/") for url in listed))
        if not self.urls:
            raise ValueError("the NLU client needs at least one server URL")
        self.timeout = timeout
        self.fallback_threshold = fallback_threshold
        self.metrics: FailureCounter = metrics or _NoMetrics()
        self.languages = languages or LanguageIdentifier()
        self.in_flight = in_flight
        self.retry_seconds = retry_seconds
        self.last_answer: float | None = None  # monotonic time of the last parse that came back
        self._servers = [_Server(url) for url in self.urls]
        self._waiting: deque[_Turn] = deque()
        self._next = 0  # round robin among equally busy servers
        self._transport = transport  # the tests' fake servers
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._failing = False  # the last parse got no answer

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            connections = self.in_flight * len(self._servers)
            self._http = httpx.AsyncClient(
                transport=self._transport,
                limits=httpx.Limits(max_keepalive_connections=connections,
                                    max_connections=connections),
            )
        return self._http

    async def close(self) -> None:
        """Close the HTTP connections."""
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
            body = await self._post(normalised)
        except _NoAnswer as failure:
            self.metrics.up(False)
            if not self._failing:
                log.warning("NLU unavailable (%s); answering with buttons until it answers "
                            "again", failure)
                self._failing = True
            return Parsed(NOT_UNDERSTOOD, 0.0, (), language, available=False)
        if self._failing:
            log.info("the NLU answers again")
            self._failing = False
        self.last_answer = self._clock()
        self.metrics.up(True)
        return self._to_parsed(body, language)

    async def _post(self, text: str) -> dict[str, Any]:
        """Send the text to the next free server in arrival order; on a death, to another.

        The timeout covers the whole wait, the queue included: it is how long a customer's
        message may wait to be understood before the bot answers with buttons. Counting from
        the send alone would let a burst keep a message queued for any length of time.
        """
        deadline = self._clock() + self.timeout
        tried: set[str] = set()
        while True:
            server = await self._turn(deadline, tried)
            if server is None:
                self.metrics.failed("QueueTimeout")
                raise _NoAnswer("QueueTimeout")
            tried.add(server.url)
            try:
                return await self._send(server, text, deadline)
            except _ServerFailed as failure:
                self.metrics.failed(failure.reason)
                if failure.server_dead:
                    self._mark_down(server, failure.reason)
                if self._clock() >= deadline or len(tried) == len(self._servers):
                    raise _NoAnswer(failure.reason) from None
            finally:
                server.in_flight -= 1
                self._dispatch()

    async def _turn(self, deadline: float, tried: set[str]) -> _Server | None:
        """Wait in line for a server with room; None when the deadline comes first.

        A retry (its first server died) goes to the front: it arrived before the others.
        """
        turn = _Turn(asyncio.get_running_loop().create_future(), frozenset(tried))
        if tried:
            self._waiting.appendleft(turn)
        else:
            self._waiting.append(turn)
        self._dispatch()
        try:
            async with asyncio.timeout(max(0.0, deadline - self._clock())):
                return await turn.server
        except TimeoutError:
            self._hand_back(turn)
            return None
        except asyncio.CancelledError:
            self._hand_back(turn)
            raise

    def _hand_back(self, turn: _Turn) -> None:
        """Leave the line; a server handed over just as the wait ended goes to the next."""
        if turn.server.cancel() or turn.server.cancelled():  # the dispatcher skips it
            return
        turn.server.result().in_flight -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand servers with room to the longest-waiting requests."""
        while self._waiting:
            turn = self._waiting[0]
            if turn.server.done():  # its deadline passed while it waited
                self._waiting.popleft()
                continue
            server = self._free_server(turn.tried)
            if server is None:
                return
            server.in_flight += 1
            self._waiting.popleft().server.set_result(server)

    def _free_server(self, tried: frozenset[str]) -> _Server | None:
        """Return the least busy server that may take a request now, or None."""
        now = self._clock()
        pool = [s for s in self._servers if s.url not in tried]
        healthy = [s for s in pool if not s.down]
        # A down server gets one probe once its pause is over; with no healthy server left
        # every down one is tried at once (a refused connection costs a millisecond, and
        # the alternative is no answer at all).
        candidates = [s for s in healthy if s.in_flight < self.in_flight] + [
            s for s in pool if s.down and (
                (s.in_flight == 0 and now >= s.retry_at)
                or (not healthy and s.in_flight < self.in_flight))]
        if not candidates:
            return None
        count = len(self._servers)
        # Fewest in flight first; among equals, the one after the last chosen.
        chosen = min(candidates, key=lambda s: (
            s.in_flight, (self._servers.index(s) - self._next) % count))
        self._next = (self._servers.index(chosen) + 1) % count
        return chosen

    async def _send(self, server: _Server, text: str, deadline: float) -> dict[str, Any]:
        """POST one parse to one server within what is left of the deadline."""
        sent = self._clock()
        left = max(0.001, deadline - sent)
        try:
            # httpx's timeout bounds each read and write, not the whole request.
            async with asyncio.timeout(left):
                response = await self._client().post(
                    f"{server.url}/model/parse", json={"text": text}, timeout=left)
            response.raise_for_status()
            body = response.json()
        except (TimeoutError, httpx.TimeoutException):
            # A busy server still answers someone; one that sent nothing back while this
            # request waited for at least half the timeout is stuck.
            stuck = self._clock() - sent >= self.timeout / 2 and server.answered_at < sent
            raise _ServerFailed("Timeout", server_dead=stuck) from None
        except (httpx.HTTPError, ValueError) as exc:
            raise _ServerFailed(type(exc).__name__, server_dead=True) from None
        if not isinstance(body, dict):
            raise _ServerFailed("NotAnObject", server_dead=True)
        self._mark_up(server)
        return body

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

    def _mark_down(self, server: _Server, reason: str) -> None:
        pause = min(self.retry_seconds * 2 ** server.failures, RETRY_MAX_SECONDS)
        server.failures += 1
        server.retry_at = self._clock() + pause
        if server.failures == 1 and len(self._servers) > 1:
            log.warning("NLU server at %s unavailable (%s); the others answer meanwhile",
                        server.url, reason)

    def _mark_up(self, server: _Server) -> None:
        if server.down and len(self._servers) > 1:
            log.info("NLU server at %s answers again", server.url)
        server.failures = 0
        server.answered_at = self._clock()

    def answered_within(self, seconds: float) -> bool:
        """Say whether a parse succeeded this recently (a busy server still answers)."""
        return (any(not s.down for s in self._servers) and self.last_answer is not None
                and self._clock() - self.last_answer <= seconds)

    async def reachable(self) -> bool:
        """Say whether any of the servers answers within a second."""
        async with httpx.AsyncClient(timeout=1.0, transport=self._transport) as http:
            for url in self.urls:
                try:
                    if (await http.get(url + "/")).status_code == 200:
                        return True
                except httpx.HTTPError:
                    continue
        return False
