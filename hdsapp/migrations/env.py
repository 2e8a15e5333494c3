"""Alembic environment: one engine per run, batch mode on SQLite (no ALTER of constraints)."""

from alembic import context

from hdsapp.core.db import make_engine
from hdsapp.models import SQLModel

config = context.config
url = config.attributes["database_url"]
engine = make_engine(url)
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=engine.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
finally:
    engine.dispose()
