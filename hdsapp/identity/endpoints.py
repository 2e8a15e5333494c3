"""Identity routes: login and logout, OpenID Connect, step-up, the current user, tokens.

Cookies. The session cookie is ``__Host-hds_session``: HttpOnly (no script reads it), Secure,
``Path=/``, no Domain (the ``__Host-`` prefix makes browsers enforce all three), and
``SameSite=Lax``. Lax rather than Strict: the return from Pro Santé Connect is a cross-site
redirect chain, and with Strict the first page after it (and any link into the PWA from a mail
or a notification) would arrive without the cookie. Lax still withholds the cookie from
cross-site POST, PUT, PATCH, DELETE, from iframes and from cross-site fetches; CSRF protection
rests on the ``X-CSRF-Token`` header, required on every unsafe method the cookie authenticates.
The OpenID pre-authentication cookie ``__Host-hds_oidc`` is Lax by necessity (it must come
back on the provider's redirect) and lives ten minutes.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import RedirectResponse

from hdsapp.core.actor import Actor
from hdsapp.core.db import utcnow
from hdsapp.core.errors import Unauthenticated
from hdsapp.dependencies import (
    CurrentUserDep,
    DatabaseDep,
    SessionDep,
    SettingsDep,
    request_info,
)
from hdsapp.identity import service
from hdsapp.identity.schemas import (
    Authentication,
    LoginRequest,
    LoginResponse,
    Membership,
    MePublic,
    Profession,
    ProviderList,
    ProviderPublic,
    ReauthenticateRequest,
    ReauthenticateResponse,
    RecoveryCodes,
    SessionPublic,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenPublic,
    UserPublic,
)

if TYPE_CHECKING:
    from hdsapp.models.personal_access_token import PersonalAccessToken
    from hdsapp.models.user import User

router = APIRouter(tags=["identity"])

# Cookies only: with "cache" and "storage" Chromium sometimes held the logout's answer for tens
# of seconds (seen in the browser tests); the page wipes caches, IndexedDB, Web Storage and the
# service worker itself (hdsapp/web/static/js/session.js) before it reloads.
CLEAR_SITE_DATA = '"cookies"'


def _runtime(
    request: Request, settings: SettingsDep, database: DatabaseDep
) -> service.IdentityRuntime:
    return service.runtime_for(request.app.state, settings, database)


RuntimeDep = Annotated[service.IdentityRuntime, Depends(_runtime)]


def _set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax"
    )


def _clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="lax")


def _user(user: User) -> UserPublic:
    profession = (
        Profession(code=user.profession, label=service.profession_label(user.profession))
        if user.profession
        else None
    )
    return UserPublic(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        status=user.status,
        rpps=user.rpps,
        idnps=user.idnps,
        profession=profession,
    )


def _token(row: PersonalAccessToken) -> TokenPublic:
    return TokenPublic(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=row.scopes.split(","),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        state=service.token_state(row, utcnow()),
    )


# -- password login, session, logout, step-up ------------------------------------------------


@router.post("/api/v1/auth/login", response_model=LoginResponse)
def login(
    *,
    body: LoginRequest,
    request: Request,
    response: Response,
    database: DatabaseDep,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
) -> LoginResponse:
    opened = service.login_with_password(
        database=database,
        session=session,
        settings=settings,
        runtime=runtime,
        request=request_info(request),
        email=body.email,
        password=body.password,
        otp=body.otp,
        previous_token=request.cookies.get(service.SESSION_COOKIE),
        now=utcnow(),
    )
    _set_cookie(response, service.SESSION_COOKIE, opened.token, opened.max_age_seconds)
    return LoginResponse(
        csrf_token=opened.csrf_token,
        user=_user(opened.user),
        authenticated_at=opened.authenticated_at,
        expires_at=opened.expires_at,
    )


@router.get("/api/v1/auth/session", response_model=SessionPublic)
def current_session(
    request: Request, actor: CurrentUserDep, session: SessionDep, settings: SettingsDep
) -> SessionPublic:
    found = service.current_session(
        session=session,
        settings=settings,
        actor=actor,
        session_token=request.cookies.get(service.SESSION_COOKIE),
    )
    return SessionPublic(
        csrf_token=found.csrf_token,
        user=_user(found.user),
        method=found.method,
        provider=found.provider,
        authenticated_at=found.authenticated_at,
        idle_expires_at=found.idle_expires_at,
        expires_at=found.expires_at,
    )


@router.post("/api/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(actor: CurrentUserDep, session: SessionDep) -> Response:
    service.logout(session=session, actor=actor, now=utcnow())
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA
    _clear_cookie(response, service.SESSION_COOKIE)
    return response


@router.post("/api/v1/auth/reauthenticate", response_model=ReauthenticateResponse)
def reauthenticate(
    *,
    body: ReauthenticateRequest,
    actor: CurrentUserDep,
    database: DatabaseDep,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
) -> ReauthenticateResponse:
    when = service.reauthenticate(
        database=database,
        session=session,
        settings=settings,
        runtime=runtime,
        actor=actor,
        password=body.password,
        otp=body.otp,
        now=utcnow(),
    )
    return ReauthenticateResponse(authenticated_at=when)


# -- OpenID Connect --------------------------------------------------------------------------


@router.get("/api/v1/auth/providers", response_model=ProviderList)
def list_providers(runtime: RuntimeDep) -> ProviderList:
    return ProviderList(
        items=[
            ProviderPublic(
                name=name, display_name=label, login_url=f"/api/v1/auth/oidc/{name}/login"
            )
            for name, label in service.providers(runtime)
        ]
    )


@router.get(
    "/api/v1/auth/oidc/{provider}/login",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
)
def oidc_login(
    provider: str, request: Request, session: SessionDep, runtime: RuntimeDep
) -> RedirectResponse:
    start = service.begin_oidc_login(
        session=session,
        runtime=runtime,
        request=request_info(request),
        provider=provider,
        now=utcnow(),
    )
    response = RedirectResponse(start.authorization_url, status_code=status.HTTP_302_FOUND)
    _set_cookie(response, service.PREAUTH_COOKIE, start.binding_token, start.max_age_seconds)
    return response


@router.get(
    "/api/v1/auth/oidc/{provider}/callback",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
)
def oidc_callback(
    *,
    provider: str,
    request: Request,
    database: DatabaseDep,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
) -> RedirectResponse:
    opened = service.complete_oidc_login(
        database=database,
        session=session,
        settings=settings,
        runtime=runtime,
        request=request_info(request),
        provider=provider,
        binding_token=request.cookies.get(service.PREAUTH_COOKIE),
        params={k: v for k, v in request.query_params.items() if len(v) <= 4096},
        previous_token=request.cookies.get(service.SESSION_COOKIE),
        now=utcnow(),
    )
    response = RedirectResponse("/", status_code=status.HTTP_302_FOUND)
    _clear_cookie(response, service.PREAUTH_COOKIE)
    _set_cookie(response, service.SESSION_COOKIE, opened.token, opened.max_age_seconds)
    return response


# -- the current user ------------------------------------------------------------------------


def _authentication(actor: Actor) -> Authentication:
    if actor.kind not in {"user", "token"}:
        raise Unauthenticated()
    return Authentication(
        kind="user" if actor.kind == "user" else "token",
        authenticated_at=actor.authenticated_at,
        second_factor=actor.second_factor,
        scopes=sorted(s.value for s in actor.scopes),
        session_id=actor.session_id,
        token_id=actor.token_id,
    )


@router.get("/api/v1/me", response_model=MePublic)
def me(actor: CurrentUserDep, session: SessionDep) -> MePublic:
    user = service.current_user(session=session, actor=actor)
    return MePublic(
        **_user(user).model_dump(),
        groups=[
            Membership(group_id=group_id, role=str(role))
            for group_id, role in sorted(actor.memberships.items(), key=lambda m: str(m[0]))
        ],
        authentication=_authentication(actor),
    )


@router.get("/api/v1/me/tokens", response_model=TokenList)
def list_tokens(actor: CurrentUserDep, session: SessionDep) -> TokenList:
    return TokenList(items=[_token(t) for t in service.list_tokens(session=session, actor=actor)])


@router.post("/api/v1/me/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(
    body: TokenCreate, actor: CurrentUserDep, session: SessionDep, settings: SettingsDep
) -> TokenCreated:
    created = service.create_token(
        session=session,
        settings=settings,
        actor=actor,
        name=body.name,
        scopes=body.scopes,
        expires_in=body.expires_in,
        now=utcnow(),
    )
    return TokenCreated(**_token(created.row).model_dump(), token=created.token)


@router.delete("/api/v1/me/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: uuid.UUID, actor: CurrentUserDep, session: SessionDep) -> Response:
    service.revoke_token(session=session, actor=actor, token_id=token_id, now=utcnow())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/v1/me/recovery-codes",
    response_model=RecoveryCodes,
    status_code=status.HTTP_201_CREATED,
)
def regenerate_recovery_codes(
    actor: CurrentUserDep, session: SessionDep, settings: SettingsDep
) -> RecoveryCodes:
    codes = service.regenerate_recovery_codes(
        session=session, settings=settings, actor=actor, now=utcnow()
    )
    return RecoveryCodes(codes=codes)
