"""The `techbot` command line."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from logging.handlers import RotatingFileHandler
from pathlib import Path

from bot.settings import LogFormat, Settings, SettingsError, load_settings
from bot.stopping import stop_before_start
from nlu.project import NluSetupError

Command = Callable[[Settings, argparse.Namespace], int]


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.app import build_services

    services = build_services(settings, migrate=True)
    services.engine.dispose()
    print(f"database at newest schema: {services.engine.url.render_as_string()}")
    return 0


def _seed_demo(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.app import build_services
    from bot.arrivals import backtest
    from storage.db import transaction
    from storage.demo import seed_demo

    services = build_services(settings)
    with transaction(services.sessions) as session:
        result = seed_demo(session, now=services.clock(), link_ttl=timedelta(
            hours=settings.telegram.link_token_ttl_hours))
        # The past visits give the arrival model its history and, judged, its track record.
        judged = backtest(session, services=services, order_ids=result.history)
    services.engine.dispose()
    print(f"demo data: {len(result.orders)} orders, {result.technicians} technicians, "
          f"{result.slots} slots, {len(result.history)} past visits to learn from, "
          f"{judged} past forecasts judged")
    for number, language, token in result.orders:
        print(f"  order {number} ({language}): "
              f"https://t.me/{settings.telegram.bot_username}?start={token}")
    return 0


LANGUAGE_CODES = ("de", "en", "tr", "ru", "ar")
MIN_PASSWORD = 10


def _password(args: argparse.Namespace) -> str | None:
    """Read the new password: asked twice on a terminal, else the first line of stdin."""
    if sys.stdin.isatty() and not args.password_stdin:
        import getpass

        first = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != first:
            print("techbot agents: the two passwords differ", file=sys.stderr)
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _agents(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import build_services
    from storage.agents import disable_agent, list_agents, put_agent
    from storage.db import transaction

    languages: list[str] = []
    password = ""
    if args.agents == "add":
        languages = [code.strip() for code in (args.languages or "").split(",") if code.strip()]
        unknown = sorted(set(languages) - set(LANGUAGE_CODES))
        if unknown:
            print(f"techbot agents: unknown language {', '.join(unknown)}; use "
                  f"{','.join(LANGUAGE_CODES)}", file=sys.stderr)
            return 2
        given = _password(args)
        if given is None:
            return 2
        password = given
        if len(password) < MIN_PASSWORD:
            print(f"techbot agents: the password needs at least {MIN_PASSWORD} characters",
                  file=sys.stderr)
            return 2
    services = build_services(settings)
    try:
        with transaction(services.sessions) as session:
            if args.agents == "add":
                new = put_agent(session, name=args.name, password=password, languages=languages,
                                now=services.clock())
                print(f"agent {args.name} {'added' if new else 'updated'}; languages: "
                      f"{','.join(languages) or 'all'}")
            elif args.agents == "disable":
                if not disable_agent(session, name=args.name):
                    print(f"techbot agents: no agent {args.name!r}", file=sys.stderr)
                    return 2
                print(f"agent {args.name} can no longer log in")
            else:
                for agent in list_agents(session):
                    state = "disabled" if agent.disabled else "active"
                    print("\t".join((agent.name, ",".join(agent.languages) or "all", state)))
    finally:
        services.engine.dispose()
    return 0


def _run(settings: Settings, _args: argparse.Namespace) -> int:
    # Until the service installs its own (bot.app.serve), a stop ends the start-up cleanly.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, stop_before_start)
    from bot.app import run

    run(settings)
    return 0


def _nlu(settings: Settings, args: argparse.Namespace) -> int:
    from nlu import commands
    from nlu.project import train

    nlu = settings.nlu
    try:
        if args.nlu == "train":
            print(train(force=args.force))
            return 0
        if args.nlu == "serve":
            return commands.serve(port=args.port or nlu.local_port, foreground=args.foreground)
        if args.nlu == "stop":
            return commands.stop()
        if args.nlu == "drop-held-out":
            return commands.drop_held_out()
        if args.nlu == "parse":
            return commands.parse(urls=nlu.server_urls, port=nlu.local_port,
                                  timeout=nlu.timeout_seconds, threshold=nlu.fallback_threshold)
        return commands.evaluate(urls=nlu.server_urls, port=nlu.local_port, folds=args.folds,
                                 threshold=nlu.fallback_threshold)
    except NluSetupError as exc:
        print(f"techbot: {exc}", file=sys.stderr)
        return 2


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import terminal_chat

    return terminal_chat(settings, order_number=args.order, language=args.lang)


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import demo

    return demo(settings, order_number=args.order, language=args.lang)


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from bot.replay import ReplayError, replay

    if not args.verbose:  # stderr carries the progress bar and the refused calls
        logging.getLogger().setLevel(logging.WARNING)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        return replay(settings, Path(args.log), out=out, ask_every_minutes=args.ask_every,
                      tick_seconds=args.tick, database_url=args.database, explain=args.explain)
    except ReplayError as exc:
        print(f"techbot replay: {exc}", file=sys.stderr)
        return 2
    finally:
        if out is not sys.stdout:
            out.close()


def _agent_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,100}", value):
        raise argparse.ArgumentTypeError("letters, digits and _ . @ - only, at most 100")
    return value


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
    for name, handler, text in (
        ("chat", _chat, "be the customer of an order in the terminal"),
        ("demo", _demo, "the service and a terminal chat on a demo order"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--order", default="40000001", help="order number (default: demo order)")
        sub.add_argument("--lang", choices=["de", "en", "tr", "ru", "ar"],
                         help="answer in this language from the start")
        sub.set_defaults(handler=handler)
    replay = commands.add_parser(
        "replay", help="replay a log of ops-API calls; write what every customer was told")
    replay.add_argument("log", help="JSON lines: {at, method, path, body} in time order")
    replay.add_argument("--out", help="write the customers' messages here (default: stdout)")
    replay.add_argument("--ask-every", type=float, metavar="MINUTES",
                        help="also write the status answer of every visit of the day this often")
    replay.add_argument("--tick", type=float, metavar="SECONDS",
                        help="the push tick in replayed time (default: scheduler.tick_seconds)")
    replay.add_argument("--database", metavar="URL",
                        help="replay into this database (default: a fresh temporary SQLite)")
    replay.add_argument("--explain", action="store_true",
                        help="status lines also carry late_probability (the model's P(late))")
    replay.set_defaults(handler=_replay)
    agents = commands.add_parser("agents", help="the service team's console logins"
                                 ).add_subparsers(dest="agents", required=True)
    add = agents.add_parser("add", help="add an agent (or set a new password and languages)")
    add.add_argument("name", type=_agent_name)
    add.add_argument("--languages", help="comma-separated, e.g. de,en (default: all)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from stdin (also when stdin is not a terminal)")
    disable = agents.add_parser("disable", help="stop an agent from logging in")
    disable.add_argument("name", type=_agent_name)
    agents.add_parser("list", help="list the agents and their languages")
    for sub in agents.choices.values():
        sub.set_defaults(handler=_agents)
    nlu = commands.add_parser("nlu", help="the Rasa NLU model").add_subparsers(
        dest="nlu", required=True)
    train = nlu.add_parser("train", help="train (skipped when data and config are unchanged)")
    train.add_argument("--force", action="store_true", help="train even if the model is current")
    serve = nlu.add_parser("serve", help="serve the model; return once it answers")
    serve.add_argument("--port", type=int, default=0, help="default: nlu.local_port")
    serve.add_argument("--foreground", action="store_true", help="stay attached until Ctrl-C")
    nlu.add_parser("stop", help="stop the server `nlu serve` started")
    nlu.add_parser("drop-held-out", help="delete training lines that are held-out messages")
    nlu.add_parser("parse", help='stdin: JSON lines {"text": ...}; stdout: one JSON per line')
    evaluate = nlu.add_parser("evaluate",
                              help="held-out sets and k-fold; writes docs/nlu-report.md")
    evaluate.add_argument("--folds", type=int, default=5, help="0 or 1: skip cross-validation")
    for sub in (train, serve, evaluate):
        sub.set_defaults(handler=_nlu)
    for name in ("stop", "parse", "drop-held-out"):
        nlu.choices[name].set_defaults(handler=_nlu)
    return parser


# httpx logs every request URL at INFO, and a Bot API URL contains the bot token.
QUIET_LOGGERS = ("alembic", "httpx", "httpcore", "telegram")
# APScheduler's job bookkeeping ("Added job", "Running job", "Removed job") is for debugging.
DEBUG_ONLY_LOGGERS = ("apscheduler",)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The name of the one handler configure_logging installs, so a second call replaces it.
HANDLER_NAME = "techbot"
# The interactive commands log to a file: their terminal is the customer's conversation.
COMMANDS_LOGGING_TO_FILE = ("chat", "demo")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON (a traceback goes into its own field)."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, verbose: bool = False, log_format: LogFormat = "text",
                      file: Path | None = None) -> None:
    """Log INFO and up through one handler (stderr, or the file); keep noisy libraries quiet."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(file, maxBytes=5_000_000, backupCount=2, encoding="utf-8")
    else:
        handler = logging.StreamHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for chatty in QUIET_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.WARNING)
    for bookkeeping in DEBUG_ONLY_LOGGERS:
        logging.getLogger(bookkeeping).setLevel(logging.NOTSET if verbose else logging.WARNING)


def log_file_of(settings: Settings, command: str) -> Path | None:
    """Return the log file of an interactive command, under the data folder, or None."""
    if command not in COMMANDS_LOGGING_TO_FILE:
        return None
    return settings.resolved_data_dir / "logs" / f"techbot-{command}.log"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load the settings and run the command."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        log_file = log_file_of(settings, args.command)
        configure_logging(verbose=args.verbose, log_format=settings.logging.format,
                          file=log_file)
        if log_file is not None:
            print(f"techbot: the log goes to {log_file}", file=sys.stderr)
        handler: Command = args.handler
        return handler(settings, args)
    except (SettingsError, NluSetupError) as exc:
        print(f"techbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
