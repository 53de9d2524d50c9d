"""Shared fixtures: databases (SQLite and PostgreSQL), a fixed clock, factories."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.cli import configure_logging
from bot.services import Services
from bot.settings import Settings, load_settings
from nlu.commands import free_port
from nlu.project import PROJECT_ROOT, RASA_VENV, RasaServer, model_path
from storage.db import make_engine, make_session_factory
from storage.migrate import upgrade
from storage.models import Base

API_TOKEN = "test-token-0123456789abcdef"
PG_URL = os.environ.get("TECHBOT_TEST_DATABASE_URL", "")
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday, 08:00 in Berlin

# Keep the settings of the developer's shell out of the tests.
for _name in [n for n in os.environ if n.startswith("TECHBOT_") and n != "TECHBOT_CACHE_DIR"
              and n != "TECHBOT_TEST_DATABASE_URL"]:
    del os.environ[_name]


class _Collect(logging.Handler):
    """Keep every log record of the test session, formatted, for the scan at the end."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage() + (
                "\n" + logging.Formatter().formatException(record.exc_info)
                if record.exc_info else ""))
        except Exception:
            self.lines.append(str(record.msg))


COLLECTED = _Collect()
# What must never reach a log: phones, street addresses, secrets (the tests' own values).
SECRETS_IN_TESTS = re.compile(
    r"\+49 ?171|5550123|Musterweg|Torstra(ß|ss)e|Invalidenstra|Sonnenallee|Weg \d|"
    r"test-token-0123456789|e2e-api-token|e2e-webhook-secret|TEST-token-for-the-emulator")


def pytest_configure(config: pytest.Config) -> None:
    """Log like the service does, and keep the records."""
    configure_logging()
    logging.getLogger().addHandler(COLLECTED)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any log line of the whole suite carries personal data or a secret."""
    leaks = [line for line in COLLECTED.lines if SECRETS_IN_TESTS.search(line)]
    if leaks:
        print("\nLOG LEAKS (phone, address or token in the logs):")
        for line in leaks[:20]:
            print("   ", line[:300])
        session.exitstatus = 1


def pytest_report_header() -> list[str]:
    """Say which databases the storage tests run on."""
    if PG_URL:
        return [f"PostgreSQL tests: {make_url(PG_URL).render_as_string()}"]
    return ["PostgreSQL tests: SKIPPED (set TECHBOT_TEST_DATABASE_URL to run them)"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a migrated SQLite file that each test copies (migrating once is faster)."""
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """Create a fresh PostgreSQL database for this test run, migrated; drop it afterwards."""
    if not PG_URL:
        pytest.skip("TECHBOT_TEST_DATABASE_URL is not set: no PostgreSQL server to test against")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"techbot_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty, migrated database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_database")
    yield url
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """Yield an engine on the test database."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory on the test database."""
    return make_session_factory(engine)


@pytest.fixture(scope="session")
def rasa_server() -> Iterator[RasaServer]:
    """Start the real Rasa server once for the session (`make test` trains the model first)."""
    if not (RASA_VENV / "bin" / "rasa").exists() or not model_path().exists():
        pytest.skip("no Rasa environment or trained model: run `make model` (make test does)")
    server = RasaServer(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Return settings with an API token, as the service would have them."""
    monkeypatch.setenv("TECHBOT_API__TOKEN", API_TOKEN)
    return load_settings()


@pytest.fixture
def services(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> Services:
    """Return the services on the test database with a fixed clock."""
    return Services(settings=settings, engine=engine, sessions=sessions, clock=lambda: NOW)


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory, rasa_server: RasaServer) -> dict[str, str]:
    """Seed the demo data in a temporary data folder; return the environment that uses it."""
    data = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "TECHBOT_DATA_DIR": str(data), "TECHBOT_NLU__URL": rasa_server.url}
    subprocess.run([sys.executable, "-m", "bot.cli", "seed", "demo"], env=env, cwd=PROJECT_ROOT,
                   check=True, capture_output=True, timeout=120)
    return env
