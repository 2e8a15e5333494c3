"""FastAPI dependencies shared by the endpoints: the request's unit of work, settings, actor."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.actor import Actor, RequestInfo, anonymous
from hdsapp.core.db import Database
from hdsapp.core.http import current_request_id

MAX_USER_AGENT = 512


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


def request_info(request: Request) -> RequestInfo:
    """Where the request comes from, as the audit log records it."""
    request_id = getattr(request.state, "request_id", None) or current_request_id()
    user_agent = request.headers.get("user-agent")
    return RequestInfo(
        request_id=request_id,
        client_ip=request.client.host if request.client else None,
        user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
    )


def get_actor(request: Request) -> Actor:
    """The caller: the Actor an upstream dependency or middleware authenticated, else an
    anonymous one (identity replaces this body with real authentication)."""
    actor = getattr(request.state, "actor", None)
    if isinstance(actor, Actor):
        return actor
    return anonymous(request_info(request))


ActorDep = Annotated[Actor, Depends(get_actor)]
