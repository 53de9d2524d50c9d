"""The migrations build the same schema on both databases, and match the models."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect

from storage.models import Base


def _schema(engine: Engine) -> dict[str, Any]:
    inspector = inspect(engine)
    tables = {}
    for table in sorted(t for t in inspector.get_table_names() if t != "alembic_version"):
        tables[table] = {
            "columns": sorted((c["name"], c["nullable"]) for c in inspector.get_columns(table)),
            "pk": sorted(inspector.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in inspector.get_indexes(table)
                              # PostgreSQL also lists each unique constraint as an index.
                              if not i.get("duplicates_constraint")),
            "unique": sorted((u["name"], tuple(u["column_names"]))
                             for u in inspector.get_unique_constraints(table)),
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"])
                          for f in inspector.get_foreign_keys(table)),
        }
    return tables


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], "models changed without a migration: alembic revision --autogenerate"


@pytest.mark.postgres
def test_sqlite_and_postgresql_get_the_same_schema(sqlite_template: Any, pg_database: str) -> None:
    sqlite = create_engine(f"sqlite:///{sqlite_template}")
    postgres = create_engine(pg_database)
    try:
        assert _schema(sqlite) == _schema(postgres)
        assert set(_schema(sqlite)) == {t.name for t in Base.metadata.sorted_tables}
    finally:
        sqlite.dispose()
        postgres.dispose()


def test_unread_tickets_become_handoffs_and_back(engine: Engine) -> None:
    from alembic import command
    from sqlalchemy import text

    from storage.migrate import alembic_config, upgrade

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO customers (id, name, language, postal_code, created_at) "
            "VALUES (1, 'Erika', 'tr', '10115', '2026-11-20 10:00:00+00')"))
        connection.execute(text(
            "INSERT INTO orders (id, number, customer_id, status, street, postal_code, city, "
            "timezone, region, moves, created_at, updated_at) VALUES (1, '40000009', 1, "
            "'scheduled', 'Weg 1', '10115', 'Berlin', 'Europe/Berlin', 'b', 0, "
            "'2026-11-20 10:00:00+00', '2026-11-20 10:00:00+00')"))
        connection.execute(text(
            "INSERT INTO chats (id, chat_key, order_id, language, notifications_enabled, "
            "unreachable, created_at) VALUES (1, 'tg:1', 1, 'tr', true, false, "
            "'2026-11-20 10:00:00+00')"))
        for kind, transcript, at in (
                ("handoff", "customer: yardım\nbot: tamam", "2026-11-20 11:00:00+00"),
                ("compensation", "customer: para iadesi", "2026-11-21 11:00:00+00")):
            connection.execute(text(
                "INSERT INTO tickets (order_id, kind, transcript, status, created_at) "
                "VALUES (1, :kind, :transcript, 'open', :at)"),
                {"kind": kind, "transcript": transcript, "at": at})
    upgrade(engine)
    with engine.connect() as connection:
        handoffs = connection.execute(text(
            "SELECT id, chat_key, language, status, reason FROM handoffs ORDER BY opened_at"
        )).all()
        # The newest open ticket of the chat waits for an agent; the older one is closed.
        assert [tuple(h[1:]) for h in handoffs] == [
            ("tg:1", "tr", "closed", "customer_asked"), ("tg:1", "tr", "waiting", "compensation")]
        lines = connection.execute(text(
            "SELECT sender, text FROM handoff_messages WHERE handoff_id = :id ORDER BY id"),
            {"id": handoffs[0][0]}).all()
        assert [tuple(line) for line in lines] == [("customer", "yardım"), ("bot", "tamam")]
