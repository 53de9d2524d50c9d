"""The one composition root: settings, database, NLU, scheduler and Telegram, wired once."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from telegram.request import BaseRequest

from bot.api.routes import build_api
from bot.channels.base import Channel
from bot.channels.live_location import LiveLocations
from bot.channels.telegram import TelegramBot, TelegramChannel
from bot.channels.terminal import TerminalChannel, chat_loop, order_id_of, stdout_writer
from bot.metrics import NluMetrics
from bot.pushes.decide import decide, push_rules
from bot.pushes.scheduler import build_scheduler
from bot.pushes.sender import Sender
from bot.pushes.webhook import WebhookSender
from bot.services import Services
from bot.settings import Settings
from bot.simulation import demo_clock, play_day
from bot.waitlist import run_waitlist
from nlu.client import NluClient
from nlu.commands import free_port
from nlu.project import RasaServer, train
from storage.db import make_engine, make_session_factory
from storage.migrate import upgrade

log = logging.getLogger(__name__)


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Create the data folder and the database engine; migrate the schema to the newest."""
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url, pool_size=settings.database.pool_size,
                         echo=settings.database.echo)
    if migrate:
        upgrade(engine)
    return Services(settings=settings, engine=engine, sessions=make_session_factory(engine))


async def nlu_urls(settings: Settings, stack: AsyncExitStack) -> list[str]:
    """Return the configured NLU URLs, or start local servers that the stack stops."""
    urls, booting = nlu_booting(settings, stack)
    if booting is not None:
        await booting
    return urls


def nlu_booting(settings: Settings, stack: AsyncExitStack
                ) -> tuple[list[str], asyncio.Future[None] | None]:
    """Return the NLU URLs at once and, for local servers, their start (train, then serve).

    The service answers meanwhile: the ops API and health checks at once, customers with the
    buttons the bot offers whenever the NLU does not answer.
    """
    if settings.nlu.server_urls:
        return settings.nlu.server_urls, None
    server = RasaServer(port=free_port(settings.nlu.local_port))

    def boot() -> None:
        train()
        server.start()

    booting = asyncio.ensure_future(run_in_threadpool(boot))
    stack.callback(server.stop)
    stack.callback(booting.cancel)
    return [server.url], booting


async def _report_boot(booting: asyncio.Future[None]) -> None:
    """Log once how the local NLU server's start ended (a failure names its log file)."""
    try:
        await booting
        log.info("the local NLU server answers")
    except asyncio.CancelledError:
        pass
    except Exception as error:  # the service goes on with buttons; readiness says why
        log.error("the local NLU server did not start: %s", error)


@dataclass
class Running:
    """A started service: its parts, for `techbot run`, the tests and the benchmarks."""

    services: Services
    api: FastAPI
    nlu: NluClient
    telegram: TelegramBot | None
    sender: Sender | None


@asynccontextmanager
async def pushing(services: Services, channels: list[Channel], *,
                  order_id: int | None = None) -> AsyncIterator[Sender | None]:
    """Run the scheduler's tick and, when there is a channel, the sender, for the block."""
    sender = Sender(services, channels, order_id=order_id) if channels else None
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop)) if sender else None
    # The handoff webhook follows the outbox's pattern: durable rows, any replica posts them.
    webhook = WebhookSender(services) if services.settings.handoff.webhook_url else None
    posting = asyncio.create_task(webhook.run(stop)) if webhook else None
    scheduler = build_scheduler(services, wake_sender=sender.wake.set if sender else _nothing,
                                order_ids=[order_id] if order_id is not None else None)
    scheduler.start()
    try:
        yield sender
    finally:
        services.stopping.set()
        scheduler.shutdown(wait=False)
        stop.set()
        if task is not None:
            if sender is not None:
                sender.wake.set()
            await task
        if posting is not None and webhook is not None:
            webhook.wake.set()
            await posting


def _nothing() -> None:
    """Wake nobody: without a channel, pushes wait in the outbox."""


@asynccontextmanager
async def running_service(
    settings: Settings, *, telegram_request: BaseRequest | None = None
) -> AsyncIterator[Running]:
    """Start NLU client, Telegram and the ops API app; stop them all on exit."""
    settings.require_api_token()
    settings.business_hours(), settings.require_handoff_webhook_secret()  # fail at start
    if settings.telegram_enabled and settings.telegram.mode == "webhook":
        settings.require_webhook_secret()
    services = build_services(settings)
    async with AsyncExitStack() as stack:
        stack.callback(services.engine.dispose)
        urls, booting = nlu_booting(settings, stack)
        if booting is not None:
            stack.callback(asyncio.ensure_future(_report_boot(booting)).cancel)
        client = _nlu_client(services, urls)
        stack.push_async_callback(client.close)
        # Load the language models now, not on the first customer's message (~0.6 s).
        await run_in_threadpool(client.languages.warm_up)
        telegram = None
        if settings.telegram_enabled:
            telegram = TelegramBot(services, client, request=telegram_request)
        else:
            log.warning("Telegram is off: TECHBOT_TELEGRAM__TOKEN is not set; "
                        "serving the ops API alone")
        webhook = telegram.webhook if telegram and settings.telegram.mode == "webhook" else None
        channels: list[Channel] = [TelegramChannel(telegram)] if telegram else []
        sender = await stack.enter_async_context(pushing(services, channels))

        live = LiveLocations(services, telegram.application.bot) if telegram else None

        async def order_changed(order_id: int) -> None:
            # A dispatch event is decided at once, not at the next tick; a window it freed
            # goes to the waitlist at once too.
            now = services.clock()
            told = await run_in_threadpool(decide, services, now=now, order_ids=[order_id])
            told += await run_in_threadpool(run_waitlist, services, now=now,
                                            rules=push_rules(settings))
            if told and sender is not None:
                sender.wake.set()
            if live is not None:
                await live.order_changed(order_id)

        started = {"telegram": telegram is None}

        async def readiness() -> dict[str, bool]:
            # Telegram off is no reason to keep traffic away: the ops API still serves.
            # A parse that came back recently says the NLU answers; asking it again would
            # queue behind the burst that keeps it busy and mark every replica unready at once.
            nlu = client.answered_within(NLU_RECENT_SECONDS) or await client.reachable()
            return {"nlu": nlu, "telegram": started["telegram"]}

        api = build_api(services, webhook=webhook, on_order_changed=order_changed,
                        on_position=live.technician_moved if live else None,
                        readiness=readiness,
                        wake_sender=sender.wake.set if sender is not None else None)
        if telegram is not None:
            await telegram.start()
            stack.push_async_callback(telegram.stop)
            started["telegram"] = True
        yield Running(services, api, client, telegram, sender)


async def serve(settings: Settings) -> None:
    """Run the whole service until SIGTERM or SIGINT, then stop every part in order."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stopping.set)

    # Ours while starting and stopping; uvicorn's own while it serves, which hand the signal
    # back to ours when it returns (without ours, the default handler would end the process
    # before the parts, the NLU server among them, are stopped).
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        async with running_service(settings) as running:
            # A stop lets requests under way end (a webhook update is answered before its
            # 200), but not past the time a process manager allows before SIGKILL.
            config = uvicorn.Config(running.api, host=settings.api.host,
                                    port=settings.api.port, log_level="warning",
                                    lifespan="off",
                                    timeout_graceful_shutdown=GRACEFUL_STOP_SECONDS)
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve())
            asked = asyncio.create_task(stopping.wait())
            log.info("ops API on http://%s:%s", settings.api.host, settings.api.port)
            await asyncio.wait({serving, asked}, return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            await serving
            asked.cancel()
        log.info("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(settings: Settings) -> None:
    """Run the service in a fresh event loop."""
    asyncio.run(serve(settings))


NLU_RECENT_SECONDS = 30.0
GRACEFUL_STOP_SECONDS = 5


def _nlu_client(services: Services, urls: list[str]) -> NluClient:
    nlu = services.settings.nlu
    return NluClient(urls, timeout=nlu.timeout_seconds,
                     fallback_threshold=nlu.fallback_threshold,
                     in_flight=nlu.in_flight_per_server, metrics=NluMetrics(services.metrics))


def terminal_chat(settings: Settings, *, order_number: str, language: str | None) -> int:
    """Run `techbot chat`: the terminal customer of one order."""
    services = build_services(settings)

    async def session() -> int:
        async with AsyncExitStack() as stack:
            client = _nlu_client(services, await nlu_urls(settings, stack))
            stack.push_async_callback(client.close)
            order_id = order_id_of(services, order_number)
            if order_id is not None:  # an unknown order gets its answer without pushes
                await stack.enter_async_context(
                    pushing(services, [TerminalChannel(stdout_writer)], order_id=order_id))
            return await chat_loop(services, client, order_number=order_number,
                                   language=language, lines=sys.stdin, write=stdout_writer)

    return asyncio.run(session())


def demo(settings: Settings, *, order_number: str, language: str | None) -> int:
    """Run `techbot demo`: a simulated technician day around a demo order, in the terminal."""
    print(DEMO_BANNER.format(order=order_number))
    if settings.telegram_enabled and not settings.api.token.get_secret_value():
        # The demo serves the ops API too; a throw-away token is fine on a demo machine.
        settings.api.token = SecretStr(secrets.token_hex(24))
        print(f"ops API token for this demo: {settings.api.token.get_secret_value()}")
    if not settings.telegram_enabled:
        print("(Telegram is off: set TECHBOT_TELEGRAM__TOKEN to play on Telegram as well.)\n")
    return asyncio.run(_demo(settings, order_number, language))


async def _demo(settings: Settings, order_number: str, language: str | None) -> int:
    services = build_services(settings)
    clock = demo_clock(services, order_number)
    services.clock = clock
    async with AsyncExitStack() as stack:
        client = _nlu_client(services, await nlu_urls(settings, stack))
        stack.push_async_callback(client.close)
        channels: list[Channel] = [TerminalChannel(stdout_writer)]
        if settings.telegram_enabled:
            telegram = TelegramBot(services, client)
            channels.append(TelegramChannel(telegram))
            await telegram.start()
            stack.push_async_callback(telegram.stop)
            api = build_api(services)
            config = uvicorn.Config(api, host=settings.api.host, port=settings.api.port,
                                    log_level="warning", lifespan="off")
            serving = asyncio.create_task(uvicorn.Server(config).serve())
            stack.callback(serving.cancel)
        sender = await stack.enter_async_context(pushing(services, channels))
        stop = asyncio.Event()
        day = asyncio.create_task(play_day(services, sender, order_number, stop))
        try:
            return await chat_loop(services, client, order_number=order_number,
                                   language=language, lines=sys.stdin, write=stdout_writer,
                                   on_question=clock.set_question_open)
        finally:
            stop.set()
            await day


DEMO_BANNER = """
techbot demo: you are the customer of order {order} (Katrin Schulz, Berlin). The clock runs
fast: it is the evening before the visit, and the technician's day passes in about three
minutes (while the bot waits for your answer, it runs at real time). Watch the pushes arrive:
the reminder, the narrowed window, a delay (traffic), "about 20 minutes away", the rating
request. Meanwhile talk to the bot:
"wann kommt der techniker", "verschieben", "Donnerstag nachmittag" or a number, "ja";
"stornieren"; "kannst du englisch?"; a note for the technician; "5 sterne".
Type a button's number to press it. Ctrl-D ends the demo.
"""
