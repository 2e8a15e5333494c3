"""FastAPI dependencies shared by the endpoints: the request's unit of work and settings."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.db import Database


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db_session(database: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    # scope="function" below: the commit happens before the response is sent, so a read's
    # audit entry is durable before the data leaves, and a failed commit becomes an error.
    with database.unit_of_work() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
