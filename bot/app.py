"""The one composition root: settings, database, NLU, scheduler and Telegram, wired once."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import uvicorn

from bot.api import build_api
from bot.services import Services
from bot.settings import Settings
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
