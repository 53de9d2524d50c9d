"""The `techbot` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta

from bot.settings import Settings, SettingsError, load_settings

Command = Callable[[Settings, argparse.Namespace], int]


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.app import build_services

    services = build_services(settings, migrate=True)
    services.engine.dispose()
    print(f"database at newest schema: {services.engine.url.render_as_string()}")
    return 0


def _seed_demo(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.app import build_services
    from storage.db import transaction
    from storage.demo import seed_demo

    services = build_services(settings)
    with transaction(services.sessions) as session:
        result = seed_demo(session, now=services.clock(), link_ttl=timedelta(
            hours=settings.telegram.link_token_ttl_hours))
    services.engine.dispose()
    print(f"demo data: {len(result.orders)} orders, {result.technicians} technicians, "
          f"{result.slots} slots")
    for number, language, token in result.orders:
        print(f"  order {number} ({language}): "
              f"https://t.me/{settings.telegram.bot_username}?start={token}")
    return 0


def _run(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.app import run

    run(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Describe every subcommand."""
    parser = argparse.ArgumentParser(prog="techbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve Telegram, the ops API, the scheduler and the sender"
                        ).set_defaults(handler=_run)
    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="migrate to the newest schema").set_defaults(handler=_db_upgrade)
    seed = commands.add_parser("seed", help="load data").add_subparsers(dest="seed", required=True)
    seed.add_parser("demo", help="demo orders, technicians, routes and slots"
                    ).set_defaults(handler=_seed_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load the settings and run the command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
        handler: Command = args.handler
        return handler(settings, args)
    except SettingsError as exc:
        print(f"techbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
