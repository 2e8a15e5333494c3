"""SQLModel tables, one module per table; importing this package registers them all."""

from sqlmodel import SQLModel

# Deterministic constraint names, so Alembic migrations are identical on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from hdsapp.models.worker_heartbeat import WorkerHeartbeat  # noqa: E402

__all__ = ["SQLModel", "WorkerHeartbeat"]
