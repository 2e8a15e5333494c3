"""SQLModel tables, one module per table; importing this package registers them all."""

import importlib
import pkgutil

from sqlmodel import SQLModel

# Deterministic constraint names, so Alembic migrations are identical on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Every module here defines tables; importing them all gives Alembic and the tests the full
# metadata without a hand-kept list.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SQLModel"]
