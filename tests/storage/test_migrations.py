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
