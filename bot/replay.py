"""`techbot replay`: a log of ops-API calls through the service's own code, and what each
customer was told (../shared/INTERFACES.md, section "Replay")."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from bot.api.routes import build_api
from bot.app import build_services
from bot.arrivals import status_answers
from bot.pace import SendLimiter
from bot.pushes.decide import decide
from bot.pushes.sender import Sender
from bot.services import Services
from bot.settings import Settings
from dialogues.model import Reply
from storage.chats import ensure_chat, get_chat, link_chat
from storage.db import transaction
from storage.models import Notification, NotificationStatus, Order
from storage.orders import get_order, next_decision_at

PREFIX = "replay:"
METHODS = frozenset({"GET", "PUT", "POST"})
# Pushes whose payload carries a window (and ETA) the customer was told.
WINDOW_KINDS = frozenset({"window_narrowed", "delayed", "waitlist_offer"})
NEVER = datetime.max.replace(tzinfo=UTC)  # the next tick when no order awaits a decision


class ReplayError(Exception):
    """The replay cannot start (a bad option or an unreadable log); the message says which."""


@dataclass
class ReplayClock:
    """The replayed time: it stands still between calls and jumps to each call's `at`."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


class Unlimited(SendLimiter):
    """No spacing: nothing reaches Telegram in a replay, and replayed time does not pass."""

    async def wait(self, chat: int | str, *, only_if_idle: bool = False) -> None:
        """Return at once."""


@dataclass
class RecordingChannel:
    """The chats of a replay: every order's one chat, whose pushes are written out."""

    prefix: str = PREFIX
    received: defaultdict[str, list[tuple[Reply, ...]]] = field(
        default_factory=lambda: defaultdict(list))

    async def deliver(self, chat_key: str, telegram_chat_id: int | None,
                      replies: tuple[Reply, ...]) -> None:
        """Keep the push's messages for the output."""
        self.received[chat_key].append(replies)


@dataclass(frozen=True)
class Call:
    """One line of the log: an ops-API call at a moment."""

    line: int
    at: datetime
    method: str
    path: str
    body: Any


def read_calls(lines: Iterable[str], complain: IO[str]) -> Iterator[Call]:
    """Yield the log's calls; report a line that is not one on stderr and go on."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            at = datetime.fromisoformat(item["at"])
            method, path = str(item["method"]).upper(), str(item["path"])
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError("at has no UTC offset")
            if method not in METHODS or not path.startswith("/"):
                raise ValueError(f"{method} {path} is not an ops-API call")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            complain.write(f"line {number}: skipped, not a call of the log format ({exc})\n")
            continue
        yield Call(number, at.astimezone(UTC), method, path, item.get("body"))


class Progress:
    """A progress bar on stderr: lines read, replayed time, elapsed seconds."""

    def __init__(self, out: IO[str], total: int) -> None:
        self.out, self.total = out, total
        self.started = self.shown = time.monotonic()
        self.tty = out.isatty()

    def update(self, done: int, at: datetime, *, final: bool = False) -> None:
        """Redraw at most five times a second (a line per tenth when stderr is no terminal)."""
        now = time.monotonic()
        share = done / self.total if self.total else 1.0
        if not final and (now - self.shown < (0.2 if self.tty else 30)):
            return
        self.shown = now
        bar = "#" * int(share * 30)
        text = (f"replay [{bar:<30}] {done:,}/{self.total:,} lines · "
                f"{at.strftime('%Y-%m-%d %H:%M')} UTC · {now - self.started:.0f} s")
        self.out.write(("\r" + text) if self.tty else (text + "\n"))
        if final and self.tty:
            self.out.write("\n")
        self.out.flush()


class Replay:
    """One replay: a fresh service on its own database, fed call by call."""

    def __init__(self, settings: Settings, out: IO[str], complain: IO[str], *,
                 ask_every: timedelta | None, tick: timedelta, explain: bool = False) -> None:
        self.settings, self.out, self.complain = settings, out, complain
        self.explain = explain
        self.ask_every, self.tick = ask_every, tick
        self.services: Services = build_services(settings)
        self.clock = ReplayClock(datetime(2000, 1, 1, tzinfo=UTC))
        self.origin = self.clock.now  # the first tick; the others follow every `tick`
        self.services.clock = self.clock
        self.channel = RecordingChannel()
        self.sender = Sender(self.services, [self.channel], limiter=Unlimited())
        self.token = settings.require_api_token()
        self.changed: list[int] = []
        self.linked: set[str] = set()
        self.last_sent = 0  # the newest notification id already written out

        async def order_changed(order_id: int) -> None:
            self.changed.append(order_id)  # decided right after the call, as the service does

        self.api = build_api(self.services, on_order_changed=order_changed)

    async def run(self, calls: Iterable[Call], progress: Progress) -> None:
        """Replay the calls in order, ticking and asking in between."""
        transport = httpx.ASGITransport(app=self.api)
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://replay",
                                     headers=headers) as client:
            next_tick: datetime | None = None
            next_ask: datetime | None = None
            for call in calls:
                if next_tick is None:  # the replayed time starts with the first call
                    self.clock.now = self.origin = next_tick = call.at
                    next_ask = _aligned(call.at, self.ask_every) if self.ask_every else None
                at = call.at
                if at < self.clock.now:
                    self.complain.write(f"line {call.line}: out of time order; replayed at "
                                        f"{self.clock.now.isoformat()}\n")
                    at = self.clock.now
                next_tick, next_ask = await self._advance(at, next_tick, next_ask)
                self.clock.now = at
                if await self._call(client, call):
                    # The call may have made an order due sooner than the tick planned.
                    next_tick = self._next_useful_tick(min(next_tick, self._tick_after(at)))
                progress.update(call.line, at)
            if next_tick is not None:
                await self._advance(self.clock.now, next_tick, next_ask)
            progress.update(progress.total, self.clock.now, final=True)

    def _tick_after(self, moment: datetime) -> datetime:
        """Return the first tick of the replay's grid after the moment."""
        steps = (moment - self.origin) // self.tick + 1
        return self.origin + steps * self.tick

    async def _advance(self, until: datetime, next_tick: datetime,
                       next_ask: datetime | None) -> tuple[datetime, datetime | None]:
        """Run every tick and every question that falls due up to `until`, in time order."""
        while next_tick <= until or (next_ask is not None and next_ask <= until):
            if next_ask is not None and next_ask < next_tick:
                self.clock.now = next_ask
                await run_in_threadpool(self._ask)
                assert self.ask_every is not None
                next_ask += self.ask_every
                continue
            self.clock.now = next_tick
            if decide(self.services, now=next_tick):
                await self._deliver()
            next_tick = self._next_useful_tick(next_tick + self.tick)
        return next_tick, next_ask

    def _next_useful_tick(self, tick: datetime) -> datetime:
        """Skip the ticks that would find no order due: they change nothing, so skip them."""
        with transaction(self.services.sessions) as session:
            due = next_decision_at(session)
        if due is None:  # nothing is ever due until a call changes something
            return NEVER
        if due <= tick:
            return tick
        return self._tick_after(due - self.tick / 10**6)

    async def _call(self, client: httpx.AsyncClient, call: Call) -> bool:
        """Make the call; say whether it may have changed when orders fall due."""
        try:
            response = await client.request(call.method, call.path, json=call.body)
        except Exception as exc:  # a handler that fails answers 500 and the replay goes on
            self.complain.write(f"line {call.line}: {call.method} {call.path} failed: {exc}\n")
            return False
        if response.status_code >= 400:
            detail = response.text[:300].replace("\n", " ")
            self.complain.write(f"line {call.line}: {call.method} {call.path} refused with "
                                f"{response.status_code}: {detail}\n")
            return False
        if call.method == "PUT" and call.path.startswith("/api/v1/orders/"):
            await run_in_threadpool(self._link, call.path.rsplit("/", 1)[1])
        # Positions change no order; everything else may (a PUT marks orders for the next tick).
        touched = call.method == "PUT" or bool(self.changed)
        if self.changed:
            changed, self.changed = self.changed, []
            if decide(self.services, now=self.clock.now, order_ids=sorted(set(changed))):
                await self._deliver()
        return touched

    def _link(self, number: str) -> None:
        """Treat the order as linked to one chat in its customer's language."""
        with transaction(self.services.sessions) as session:
            order = get_order(session, number=number)
            if order is None:
                return
            key = PREFIX + number
            chat = (get_chat(session, chat_key=key) if key in self.linked else
                    ensure_chat(session, chat_key=key, telegram_chat_id=None,
                                now=self.clock.now))
            assert chat is not None
            if chat.order_id != order.id:
                link_chat(session, chat=chat, order=order)
            chat.language = order.customer.language
            self.linked.add(key)

    async def _deliver(self) -> None:
        """Send whatever fell due through the real sender, and write each push out."""
        while await self.sender.run_once():
            pass
        if not any(self.channel.received.values()):
            return
        rows = await run_in_threadpool(self._newly_sent)
        for number, kind, payload, zone in rows:
            messages = self.channel.received.get(PREFIX + number)
            if not messages:
                continue  # held: the customer wants no pushes, and was told nothing
            replies = messages.pop(0)
            self._write({"at": _iso(self.clock.now, zone), "order": number, "kind": kind,
                         "text": "\n".join(r.text for r in replies),
                         "window": _window(payload, zone) if kind in WINDOW_KINDS else None,
                         "eta": _iso(_time(payload.get("eta")), zone)
                         if kind in WINDOW_KINDS else None,
                         "minutes": int(payload["minutes"]) if kind == "eta_near" else None})
        leftover = sum(len(m) for m in self.channel.received.values())
        if leftover:
            self.complain.write(f"{leftover} delivered messages matched no sent push\n")
        self.channel.received.clear()

    def _newly_sent(self) -> list[tuple[str, str, dict[str, Any], ZoneInfo]]:
        from sqlalchemy import select

        with transaction(self.services.sessions) as session:
            rows = session.execute(
                select(Notification.id, Order.number, Notification.kind, Notification.payload,
                       Order.timezone)
                .join(Order, Order.id == Notification.order_id)
                .where(Notification.id > self.last_sent,
                       Notification.status == NotificationStatus.SENT)
                .order_by(Notification.id)).all()
        if rows:
            self.last_sent = max(r[0] for r in rows)
        return [(number, kind, payload or {}, ZoneInfo(zone))
                for _, number, kind, payload, zone in rows]

    def _ask(self) -> None:
        """Write what "when is the technician coming?" would answer now, per visit of the day."""
        now = self.clock.now
        for answer in status_answers(self.services, now=now):
            zone = ZoneInfo(answer.timezone)
            line: dict[str, Any] = {
                "at": _iso(now, zone), "order": answer.number, "kind": "status",
                "window": {"start": _iso(answer.window_start, zone),
                           "end": _iso(answer.window_end, zone)},
                "eta": _iso(answer.eta, zone)}
            if self.explain:
                line["late_probability"] = answer.late_probability
            self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        self.out.write(json.dumps(line, ensure_ascii=False) + "\n")


def _aligned(moment: datetime, every: timedelta | None) -> datetime:
    """Return the first multiple of `every` (counted from midnight UTC) at or after moment."""
    assert every is not None
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    steps = -(-(moment - midnight) // every)
    return midnight + steps * every


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).isoformat() if moment is not None else None


def _window(payload: dict[str, Any], zone: ZoneInfo) -> dict[str, str | None] | None:
    start, end = _time(payload.get("from")), _time(payload.get("to"))
    if start is None or end is None:
        return None
    return {"start": _iso(start, zone), "end": _iso(end, zone)}


def replay(settings: Settings, log: Path, *, out: IO[str], ask_every_minutes: float | None,
           tick_seconds: float | None, database_url: str | None,
           complain: IO[str] = sys.stderr, explain: bool = False) -> int:
    """Run `techbot replay`: read the whole log, replay it, write the customers' messages."""
    if ask_every_minutes is not None and ask_every_minutes <= 0:
        raise ReplayError("--ask-every must be a positive number of minutes")
    if tick_seconds is not None and tick_seconds <= 0:
        raise ReplayError("--tick must be a positive number of seconds")
    try:
        with log.open("rb") as handle:
            total = sum(1 for _ in handle)  # for the progress bar; the replay then streams
    except OSError as exc:
        raise ReplayError(f"cannot read the log {log}: {exc.strerror}") from None
    tick = timedelta(seconds=tick_seconds or settings.scheduler.tick_seconds)
    ask = timedelta(minutes=ask_every_minutes) if ask_every_minutes else None
    with tempfile.TemporaryDirectory(prefix="techbot-replay-") as folder:
        own = settings.model_copy(deep=True)
        own.data_dir = Path(folder)
        own.database.url = database_url or f"sqlite:///{Path(folder) / 'replay.sqlite3'}"
        own.api.token = SecretStr(secrets.token_hex(24))  # the replay's own, never printed
        runner = Replay(own, out, complain, ask_every=ask, tick=tick, explain=explain)
        try:
            with log.open(encoding="utf-8") as handle:
                asyncio.run(runner.run(read_calls(handle, complain), Progress(complain, total)))
        finally:
            runner.services.engine.dispose()
    out.flush()
    return 0
