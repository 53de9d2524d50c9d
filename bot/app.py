"""The one composition root: settings, database, NLU, scheduler and Telegram, wired once."""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import AsyncExitStack

import uvicorn

from bot.api import build_api
from bot.metrics import NluMetrics
from bot.services import Services
from bot.settings import Settings
from bot.terminal import chat_loop, stdout_writer
from nlu.client import NluClient
from nlu.commands import nlu_endpoint
from nlu.project import train
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


async def serve(settings: Settings) -> None:
    """Run the ops API (and, when configured, Telegram) until interrupted."""
    settings.require_api_token()
    services = build_services(settings)
    async with AsyncExitStack() as stack:
        stack.callback(services.engine.dispose)
        app = build_api(services)
        if not settings.telegram_enabled:
            log.warning("Telegram is off: TECHBOT_TELEGRAM__TOKEN is not set; "
                        "serving the ops API alone")
        config = uvicorn.Config(app, host=settings.api.host, port=settings.api.port,
                                log_level="info", lifespan="off")
        server = uvicorn.Server(config)
        await server.serve()


def run(settings: Settings) -> None:
    """Run the service in a fresh event loop."""
    asyncio.run(serve(settings))


def _nlu_client(services: Services, url: str) -> NluClient:
    nlu = services.settings.nlu
    return NluClient(url=url, timeout=nlu.timeout_seconds,
                     fallback_threshold=nlu.fallback_threshold,
                     metrics=NluMetrics(services.metrics))


def terminal_chat(settings: Settings, *, order_number: str, language: str | None) -> int:
    """Run `techbot chat`: the terminal customer of one order."""
    services = build_services(settings)
    if not settings.nlu.url:
        train()
    with nlu_endpoint(settings.nlu.url, port=settings.nlu.local_port) as url:
        client = _nlu_client(services, url)

        async def session() -> int:
            try:
                return await chat_loop(services, client, order_number=order_number,
                                       language=language, lines=sys.stdin,
                                       write=stdout_writer)
            finally:
                await client.close()

        return asyncio.run(session())


def demo(settings: Settings, *, order_number: str, language: str | None) -> int:
    """Run `techbot demo`: explain the demo, then chat as the customer of a demo order."""
    print(DEMO_BANNER.format(order=order_number))
    return terminal_chat(settings, order_number=order_number, language=language)


DEMO_BANNER = """
techbot demo: you are the customer of order {order} (Katrin Schulz, Berlin).
Try: "wann kommt der techniker", "verschieben", then "Donnerstag nachmittag" or a number,
"ja"; "stornieren"; "kannst du englisch?"; a note for the technician; "5 sterne".
Type a button's number to press it. Ctrl-D ends the demo.
"""
