"""FastAPI dependencies shared by the endpoints: the request's unit of work, settings, actor."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.actor import Actor, RequestInfo
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.db import Database, utcnow
from hdsapp.core.errors import Unauthenticated
from hdsapp.core.http import current_request_id
from hdsapp.identity import service as identity

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


def get_keyring(request: Request) -> Keyring:
    """The process's key store (hdsapp.core.crypto.keyring): pass it to the services, which
    seal and open in the request's unit of work."""
    keyring: Keyring = request.app.state.keyring
    return keyring


SessionDep = Annotated[Session, Depends(get_db_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
KeyringDep = Annotated[Keyring, Depends(get_keyring)]


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
    """The caller, authenticated on every request (hdsapp.identity.service.authenticate):
    a bearer personal access token, or the session cookie (with ``X-CSRF-Token`` on unsafe
    methods), else anonymous. An Actor already set on ``request.state.actor`` is used as is."""
    actor = getattr(request.state, "actor", None)
    if isinstance(actor, Actor):
        return actor
    actor = identity.authenticate(
        database=get_database(request),
        settings=get_settings_dep(request),
        request=request_info(request),
        method=request.method,
        session_token=request.cookies.get(identity.SESSION_COOKIE),
        csrf_token=request.headers.get("x-csrf-token"),
        authorization=request.headers.get("authorization"),
        now=utcnow(),
    )
    request.state.actor = actor
    return actor


def get_current_user(actor: Annotated[Actor, Depends(get_actor)]) -> Actor:
    """The caller, who must be authenticated (a session or a token): 401 otherwise."""
    if actor.kind not in {"user", "token"} or actor.user_id is None:
        raise Unauthenticated(headers={"WWW-Authenticate": "Bearer"})
    return actor


ActorDep = Annotated[Actor, Depends(get_actor)]
CurrentUserDep = Annotated[Actor, Depends(get_current_user)]
