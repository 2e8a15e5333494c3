"""Migrations build the schema of the models, identically on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from hdsapp import migrations
from hdsapp.core.db import make_engine
from hdsapp.models import SQLModel


def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    assert migrations.is_up_to_date(database_url)
    assert _schema_diff(database_url) == []


def test_down_to_base_and_up_again(database_url: str) -> None:
    assert _tables(database_url) == set(SQLModel.metadata.tables)
    migrations.downgrade(database_url, "base")
    assert _tables(database_url) == set()
    assert not migrations.is_up_to_date(database_url)
    migrations.upgrade(database_url)
    assert _tables(database_url) == set(SQLModel.metadata.tables)
    assert _schema_diff(database_url) == []
