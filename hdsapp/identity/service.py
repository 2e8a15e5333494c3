"""Identity use cases: users, password + TOTP login, Pro Santé Connect login, browser sessions,
step-up, personal access tokens, and the authentication of every request.

Transactions. A successful login writes in the request's unit of work (``session``): the new
session row and its audit entry commit together before the cookie is sent. A refused login
must leave a trace although the request fails: the failure counter and its audit entry are
written in a short transaction of their own (``database``), and every credential check reads
in such short transactions too, *before* the request's session begins — on SQLite a begun
transaction holds the only write lock, which a second transaction of the same request would
wait for. Single-use values (a TOTP time step, a recovery code, an OpenID login state) are
consumed in their own committed transaction, so a code is spent even if the rest fails.

Failures answer one generic 401 whatever the reason (unknown account, wrong password, wrong or
replayed code, inactive account); the audit entry records the reason. An unknown account costs
the same password-hash verification as a known one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlmodel import Session

from hdsapp.config import Settings, get_settings
from hdsapp.core import accesslog
from hdsapp.core.accesslog import Access, Outcome
from hdsapp.core.actor import ALL_SCOPES, Actor, RequestInfo, Role, Scope, anonymous
from hdsapp.core.db import Database, utcnow
from hdsapp.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HdsError,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
    Unprocessable,
)
from hdsapp.groups import service as groups_service
from hdsapp.identity import credentials, professions, repository
from hdsapp.identity.oidc import FederatedIdentity, OidcClient, OidcClients, OidcError
from hdsapp.identity.ratelimit import AuthRateLimiter, delay_after, too_many
from hdsapp.models.auth_session import AuthSession
from hdsapp.models.oidc_identity import OidcIdentity
from hdsapp.models.oidc_login_state import OidcLoginState
from hdsapp.models.personal_access_token import PersonalAccessToken
from hdsapp.models.user import User

log = logging.getLogger(__name__)

SESSION_COOKIE = "__Host-hds_session"
PREAUTH_COOKIE = "__Host-hds_oidc"
PREAUTH_TTL = dt.timedelta(minutes=10)
# last_seen_at is written at most once a minute per session (and last_used_at per token).
TOUCH_INTERVAL = dt.timedelta(seconds=60)
TOKEN_MIN_LIFETIME = dt.timedelta(minutes=1)
TOKEN_MAX_LIFETIME = dt.timedelta(days=366)
TOKEN_DEFAULT_LIFETIME = dt.timedelta(days=30)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
INVALID_CREDENTIALS = "Invalid credentials."
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
_RPPS_RE = re.compile(r"^[0-9]{11}$")
_IDNPS_RE = re.compile(r"^[0-9A-Za-z]{1,20}$")

AuthMethod = Literal["password", "oidc"]


# -- runtime (per application) ---------------------------------------------------------------


class IdentityRuntime:
    """What the identity use cases keep between requests of one application: the rate
    limiter (its counters live in Redis or the database) and the OpenID clients (their
    discovery documents and keys are cached)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.limiter = AuthRateLimiter.create(
            url=settings.effective_rate_limit_url,
            database=database,
            per_minute=settings.auth_requests_per_minute,
        )
        self.oidc = OidcClients(settings.oidc_providers, public_url=settings.public_url)


_runtime_lock = threading.Lock()


def runtime_for(holder: Any, settings: Settings, database: Database) -> IdentityRuntime:
    """The runtime stored on ``holder`` (the application's state), created once."""
    with _runtime_lock:
        runtime = getattr(holder, "identity_runtime", None)
        if not isinstance(runtime, IdentityRuntime):
            runtime = IdentityRuntime(settings, database)
            holder.identity_runtime = runtime
        return runtime


# -- users -----------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL_RE.match(value):
        raise Unprocessable("Not an email address.", code="invalid-email")
    return value


def _check_practitioner_ids(rpps: str | None, idnps: str | None, profession: str | None) -> None:
    if rpps is not None and not _RPPS_RE.match(rpps):
        raise Unprocessable("An RPPS number has 11 digits.", code="invalid-rpps")
    if idnps is not None and not _IDNPS_RE.match(idnps):
        raise Unprocessable("Not an IDNPS.", code="invalid-idnps")
    if profession is not None and not professions.is_known(profession):
        raise Unprocessable(
            "Unknown profession code (see the national list TRE_G15).", code="invalid-profession"
        )


def load_memberships(session: Session, user_id: uuid.UUID) -> Mapping[uuid.UUID, Role]:
    """The user's active group memberships: group id -> role (hdsapp.groups: suspended,
    removed and expired memberships are absent). Every Actor is built through this function,
    on every request, so a membership change takes effect on the next request."""
    return groups_service.active_memberships(session, user_id)


@dataclass(frozen=True, kw_only=True)
class CreatedUser:
    user: User
    totp_secret: str | None


def create_user(
    *,
    session: Session,
    actor: Actor,
    email: str | None,
    display_name: str,
    password: str | None,
    rpps: str | None = None,
    idnps: str | None = None,
    profession: str | None = None,
    with_totp: bool = True,
    now: dt.datetime,
) -> CreatedUser:
    """A local account. With a password it is active and gets a TOTP secret (shown once);
    without one it is "invited": it can log in through Pro Santé Connect (linked by RPPS or
    IDNPS) but not with a password."""
    address = normalise_email(email) if email is not None else None
    name = display_name.strip()
    if not name or len(name) > 200:
        raise Unprocessable("A display name has 1 to 200 characters.", code="invalid-name")
    if idnps is None and rpps is not None:
        idnps = f"8{rpps}"
    _check_practitioner_ids(rpps, idnps, profession)
    if password is not None:
        try:
            password_hash = credentials.hash_password(password)
        except credentials.PasswordRuleError as exc:
            raise Unprocessable(f"Password refused: {exc}.", code="weak-password") from None
    if address is not None and repository.user_by_email(session, address) is not None:
        raise Conflict("A user with this email exists.", code="user-exists")
    if repository.user_by_practitioner_ids(session, idnps=idnps, rpps=rpps) is not None:
        raise Conflict("A user with this RPPS/IDNPS exists.", code="user-exists")
    secret = credentials.new_totp_secret() if password is not None and with_totp else None
    user = User(
        email=address,
        display_name=name,
        rpps=rpps,
        idnps=idnps,
        profession=profession,
        status="active" if password is not None else "invited",
        password_hash=password_hash if password is not None else None,
        totp_secret=secret,
        created_at=now,
        status_changed_at=now,
    )
    repository.add(session, user)
    accesslog.record(session, actor, _user_access("create", "C", user))
    return CreatedUser(user=user, totp_secret=secret)


def _user_access(
    kind: str, action: Literal["C", "U"], user: User, desc: str | None = None
) -> Access:
    return Access(
        kind=kind,
        action=action,
        resource_type="Practitioner",
        resource_id=str(user.id),
        outcome_desc=desc,
        purpose_of_use="HOPERAT",
    )


def profession_label(code: str | None) -> str | None:
    return professions.label(code)


def current_user(*, session: Session, actor: Actor) -> User:
    if actor.user_id is None or actor.kind not in {"user", "token"}:
        raise Unauthenticated()
    user = repository.user_by_id(session, actor.user_id)
    if user is None:
        raise Unauthenticated()
    return user


def user_by_email(session: Session, email: str) -> User:
    user = repository.user_by_email(session, normalise_email(email))
    if user is None:
        raise NotFound("No user with this email.", code="user-not-found")
    return user


def set_status(
    *,
    session: Session,
    actor: Actor,
    user: User,
    status: Literal["active", "suspended", "deactivated"],
    now: dt.datetime,
) -> User:
    """Change a user's status. Suspending or deactivating ends their sessions and revokes
    their tokens in the same transaction; every request checks the status anyway."""
    if user.status != status:
        user.status = status
        user.status_changed_at = now
        session.add(user)
        session.flush()
    if status != "active":
        repository.revoke_user_sessions(session, user.id, now, reason=status)
        repository.revoke_user_tokens(session, user.id, now)
    accesslog.record(session, actor, _user_access("update", "U", user, desc=f"status:{status}"))
    return user


# -- building the Actor ----------------------------------------------------------------------


def _actor_for(
    session: Session,
    *,
    kind: Literal["user", "token", "anonymous"],
    user: User,
    request: RequestInfo,
    scopes: frozenset[Scope] = frozenset(),
    session_id: uuid.UUID | None = None,
    token_id: uuid.UUID | None = None,
    authenticated_at: dt.datetime | None = None,
    second_factor: bool = False,
) -> Actor:
    return Actor(
        kind=kind,
        request=request,
        user_id=user.id,
        rpps=user.rpps,
        idnps=user.idnps,
        profession=user.profession,
        memberships=load_memberships(session, user.id) if kind != "anonymous" else {},
        scopes=scopes,
        session_id=session_id,
        token_id=token_id,
        authenticated_at=authenticated_at,
        second_factor=second_factor,
    )


def _attempt_actor(request: RequestInfo, user: User | None) -> Actor:
    """Who a refused login is recorded against: anonymous, naming the targeted account when
    it exists (auditors then see attacks on an account under its id)."""
    if user is None:
        return anonymous(request)
    return Actor(
        kind="anonymous",
        request=request,
        user_id=user.id,
        rpps=user.rpps,
        idnps=user.idnps,
        profession=user.profession,
    )


# -- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NewSession:
    """A session just opened: ``token`` goes in the cookie (only its hash is stored)."""

    token: str
    csrf_token: str
    session_id: uuid.UUID
    user: User
    authenticated_at: dt.datetime
    expires_at: dt.datetime
    max_age_seconds: int


def _session_lifetime(settings: Settings) -> dt.timedelta:
    return dt.timedelta(hours=settings.session_max_hours)


def _open_session(
    session: Session,
    *,
    settings: Settings,
    user: User,
    method: AuthMethod,
    provider: str | None,
    second_factor: bool,
    request: RequestInfo,
    previous_token: str | None,
    now: dt.datetime,
    desc: str,
) -> NewSession:
    if previous_token:
        # Rotation: whatever session this browser had is ended; the new id is fresh.
        previous = repository.session_by_hash(session, credentials.sha256_hex(previous_token))
        if previous is not None:
            repository.revoke_session(session, previous[0].id, now, reason="rotated")
    token = credentials.new_secret_token()
    row = AuthSession(
        token_hash=credentials.sha256_hex(token),
        user_id=user.id,
        method=method,
        provider=provider,
        second_factor=second_factor,
        created_at=now,
        authenticated_at=now,
        last_seen_at=now,
        expires_at=now + _session_lifetime(settings),
        client_ip=(request.client_ip or "")[:64] or None,
    )
    repository.add(session, row)
    actor = _actor_for(
        session,
        kind="user",
        user=user,
        request=request,
        scopes=ALL_SCOPES,
        session_id=row.id,
        authenticated_at=now,
        second_factor=second_factor,
    )
    accesslog.record(session, actor, Access(kind="login", action="E", outcome_desc=desc))
    return NewSession(
        token=token,
        csrf_token=credentials.csrf_token_for(token),
        session_id=row.id,
        user=user,
        authenticated_at=now,
        expires_at=row.expires_at,
        max_age_seconds=int(_session_lifetime(settings).total_seconds()),
    )


@dataclass(frozen=True, kw_only=True)
class SessionInfo:
    csrf_token: str
    user: User
    method: str
    provider: str | None
    authenticated_at: dt.datetime
    idle_expires_at: dt.datetime
    expires_at: dt.datetime


def current_session(
    *, session: Session, settings: Settings, actor: Actor, session_token: str | None
) -> SessionInfo:
    """The browser's session, with its CSRF token (for the PWA after a reload or an OpenID
    login: the cookie is HttpOnly, so the page cannot derive it)."""
    if actor.kind != "user" or actor.session_id is None or not session_token:
        raise Unauthenticated("No browser session.", code="no-session")
    row = repository.auth_session_by_id(session, actor.session_id)
    user = repository.user_by_id(session, actor.user_id) if actor.user_id else None
    if row is None or user is None:
        raise Unauthenticated("No browser session.", code="no-session")
    idle = dt.timedelta(minutes=settings.session_idle_minutes)
    return SessionInfo(
        csrf_token=credentials.csrf_token_for(session_token),
        user=user,
        method=row.method,
        provider=row.provider,
        authenticated_at=row.authenticated_at,
        idle_expires_at=min(row.last_seen_at + idle, row.expires_at),
        expires_at=row.expires_at,
    )


def logout(*, session: Session, actor: Actor, now: dt.datetime) -> None:
    """End the caller's browser session server-side (idempotent)."""
    if actor.kind != "user" or actor.session_id is None:
        return
    repository.revoke_session(session, actor.session_id, now, reason="logout")
    accesslog.record(session, actor, Access(kind="logout", action="E"))


# -- authenticating a request ----------------------------------------------------------------


def _clear_cookie_header() -> dict[str, str]:
    return {"Set-Cookie": f"{SESSION_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"}


def authenticate(
    *,
    database: Database,
    settings: Settings,
    request: RequestInfo,
    method: str,
    session_token: str | None,
    csrf_token: str | None,
    authorization: str | None,
    now: dt.datetime,
) -> Actor:
    """The Actor of one request, checked against the database on every request (revocation,
    suspension, timeouts). A bearer token wins over the cookie and needs no CSRF token; a
    cookie needs ``X-CSRF-Token`` on unsafe methods. Nothing presented: anonymous. Runs in a
    short transaction of its own, so the request's unit of work starts clean."""
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated(
                "Use Authorization: Bearer <token>.",
                code="invalid-token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return _authenticate_token(
            database=database, request=request, method=method, token=value.strip(), now=now
        )
    if session_token:
        return _authenticate_session(
            database=database,
            settings=settings,
            request=request,
            method=method,
            token=session_token,
            csrf_token=csrf_token,
            now=now,
        )
    return anonymous(request)


def _authenticate_session(
    *,
    database: Database,
    settings: Settings,
    request: RequestInfo,
    method: str,
    token: str,
    csrf_token: str | None,
    now: dt.datetime,
) -> Actor:
    expired = Unauthenticated(
        "The session has ended; log in again.",
        code="session-expired",
        headers=_clear_cookie_header(),
    )
    if len(token) > 128:
        raise expired
    with database.unit_of_work() as session:
        found = repository.session_by_hash(session, credentials.sha256_hex(token))
        if found is None:
            raise expired
        row, user = found
        idle = dt.timedelta(minutes=settings.session_idle_minutes)
        if (
            row.revoked_at is not None
            or now >= row.expires_at
            or now >= row.last_seen_at + idle
            or now >= row.created_at + _session_lifetime(settings)
            or user.status != "active"
        ):
            raise expired
        if method.upper() not in SAFE_METHODS and not credentials.csrf_matches(token, csrf_token):
            raise Forbidden(
                "Missing or wrong X-CSRF-Token header.",
                code="csrf-failed",
            )
        if now - row.last_seen_at >= TOUCH_INTERVAL:
            repository.touch_session(session, row.id, now)
        return _actor_for(
            session,
            kind="user",
            user=user,
            request=request,
            scopes=ALL_SCOPES,
            session_id=row.id,
            authenticated_at=row.authenticated_at,
            second_factor=row.second_factor,
        )


def _authenticate_token(
    *, database: Database, request: RequestInfo, method: str, token: str, now: dt.datetime
) -> Actor:
    invalid = Unauthenticated(
        "The token is invalid, expired or revoked.",
        code="invalid-token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
    if not credentials.is_personal_access_token(token):
        raise invalid
    with database.unit_of_work() as session:
        found = repository.token_by_hash(session, credentials.sha256_hex(token))
        if found is None:
            raise invalid
        row, user = found
        if row.revoked_at is not None or now >= row.expires_at or user.status != "active":
            raise invalid
        scopes = parse_scopes(row.scopes)
        needed = Scope.READ if method.upper() in SAFE_METHODS else Scope.WRITE
        if needed not in scopes:
            raise Forbidden(
                f"The token lacks the {needed.value!r} scope.",
                code="insufficient-scope",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope" scope="{needed}"'},
            )
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
            repository.touch_token(session, row.id, now)
        return _actor_for(
            session,
            kind="token",
            user=user,
            request=request,
            scopes=scopes,
            token_id=row.id,
            second_factor=row.second_factor,
        )


# -- password + second factor ----------------------------------------------------------------


def _throttle_key(login_name: str) -> str:
    return credentials.sha256_hex("login:" + login_name.strip().lower())


def _check_throttle(
    database: Database, settings: Settings, key: str, request: RequestInfo, now: dt.datetime
) -> None:
    with database.unit_of_work() as session:
        row = repository.throttle(session, key)
    if row is None:
        return
    window_end = row.window_started_at + dt.timedelta(hours=1)
    wait = 0.0
    if now < row.next_allowed_at:
        wait = (row.next_allowed_at - now).total_seconds()
    if now < window_end and row.window_failures >= settings.auth_failures_per_hour:
        wait = max(wait, (window_end - now).total_seconds())
    if wait > 0:
        accesslog.record_separately(
            database,
            anonymous(request),
            Access(kind="login", action="E", outcome=Outcome.DENIED, outcome_desc="throttled"),
        )
        raise too_many(wait, "Too many failed attempts for this account; try again later.")


def _register_failure(
    database: Database,
    key: str,
    *,
    actor: Actor,
    reason: str,
    now: dt.datetime,
) -> None:
    """Count the failure (growing delay) and record it, in one transaction of its own. The
    delay runs from the answer, not from the request (hashing took a while)."""
    now = max(now, utcnow())
    with database.unit_of_work() as session:
        row = repository.ensure_throttle(session, key, now)
        if now >= row.window_started_at + dt.timedelta(hours=1):
            row.window_started_at, row.window_failures = now, 0
        row.failures += 1
        row.window_failures += 1
        row.last_failure_at = now
        delay = delay_after(row.failures)
        row.next_allowed_at = now + dt.timedelta(seconds=delay)
        session.add(row)
        session.flush()
        desc = reason if delay == 0 else f"{reason};delayed:{delay}s"
        accesslog.record(
            session,
            actor,
            Access(kind="login", action="E", outcome=Outcome.DENIED, outcome_desc=desc),
        )


@dataclass(frozen=True)
class _Snapshot:
    id: uuid.UUID
    status: str
    password_hash: str | None
    totp_secret: str | None
    user: User


def _snapshot(
    database: Database, *, email: str | None, user_id: uuid.UUID | None
) -> _Snapshot | None:
    with database.unit_of_work() as session:
        if user_id is not None:
            user = repository.user_by_id(session, user_id)
        elif email is not None:
            user = repository.user_by_email(session, email)
        else:
            user = None
    if user is None:
        return None
    return _Snapshot(user.id, user.status, user.password_hash, user.totp_secret, user)


def _verify_credentials(
    *,
    database: Database,
    snapshot: _Snapshot | None,
    password: str,
    otp: str,
    now: dt.datetime,
) -> tuple[str | None, bool]:
    """(None, needs_rehash) when the password and a fresh second factor match an active
    account, else (reason, False). Spends the TOTP step or the recovery code."""
    matches, needs_rehash = credentials.verify_password(
        snapshot.password_hash if snapshot else None, password
    )
    if snapshot is None:
        return "unknown-account", False
    if not matches:
        return "wrong-password", False
    step = credentials.match_totp(snapshot.totp_secret, otp, now)
    recovery = None if step is not None else credentials.normalise_recovery_code(otp)
    if step is None and recovery is None:
        return "wrong-otp", False
    if snapshot.status != "active":
        return f"status:{snapshot.status}", False
    with database.unit_of_work() as session:
        if step is not None:
            if not repository.consume_totp_step(session, snapshot.id, step):
                return "otp-replayed", False
        elif recovery is not None and not repository.consume_recovery_code(
            session, snapshot.id, credentials.recovery_code_hash(recovery), now
        ):
            return "wrong-otp", False
    return None, needs_rehash


def login_with_password(
    *,
    database: Database,
    session: Session,
    settings: Settings,
    runtime: IdentityRuntime,
    request: RequestInfo,
    email: str,
    password: str,
    otp: str,
    previous_token: str | None,
    now: dt.datetime,
) -> NewSession:
    """``POST /api/v1/auth/login``: password and a second factor (TOTP code or recovery
    code). ``session`` must not have been used yet (see the module docstring)."""
    runtime.limiter.hit(request.client_ip or "unknown")
    login_name = email.strip().lower()
    key = _throttle_key(login_name)
    _check_throttle(database, settings, key, request, now)
    snapshot = (
        _snapshot(database, email=login_name, user_id=None) if _EMAIL_RE.match(login_name) else None
    )
    reason, needs_rehash = _verify_credentials(
        database=database, snapshot=snapshot, password=password, otp=otp, now=now
    )
    if reason is not None:
        actor = _attempt_actor(request, snapshot.user if snapshot else None)
        _register_failure(database, key, actor=actor, reason=reason, now=now)
        raise Unauthenticated(INVALID_CREDENTIALS, code="invalid-credentials")
    assert snapshot is not None
    repository.clear_throttle(session, key)
    user = repository.user_by_id(session, snapshot.id)
    if user is None or user.status != "active":
        raise Unauthenticated(INVALID_CREDENTIALS, code="invalid-credentials")
    if needs_rehash:
        user.password_hash = credentials.hash_password(password)
        session.add(user)
    return _open_session(
        session,
        settings=settings,
        user=user,
        method="password",
        provider=None,
        second_factor=True,
        request=request,
        previous_token=previous_token,
        now=now,
        desc="password+totp",
    )


def reauthenticate(
    *,
    database: Database,
    session: Session,
    settings: Settings,
    runtime: IdentityRuntime,
    actor: Actor,
    password: str,
    otp: str,
    now: dt.datetime,
) -> dt.datetime:
    """``POST /api/v1/auth/reauthenticate``: prove the password and a fresh second factor
    again; the session's ``authenticated_at`` becomes now (step-up)."""
    if actor.kind != "user" or actor.session_id is None or actor.user_id is None:
        raise Forbidden("Step-up needs a browser session.", code="session-required")
    runtime.limiter.hit(actor.request.client_ip or "unknown")
    snapshot = _snapshot(database, email=None, user_id=actor.user_id)
    if snapshot is None or snapshot.password_hash is None:
        raise Forbidden(
            "This account has no password: log in again with its provider.",
            code="reauthenticate-with-provider",
        )
    key = _throttle_key(snapshot.user.email or str(snapshot.id))
    _check_throttle(database, settings, key, actor.request, now)
    reason, _needs_rehash = _verify_credentials(
        database=database, snapshot=snapshot, password=password, otp=otp, now=now
    )
    if reason is not None:
        _register_failure(
            database,
            key,
            actor=_attempt_actor(actor.request, snapshot.user),
            reason=f"step-up:{reason}",
            now=now,
        )
        raise Unauthenticated(INVALID_CREDENTIALS, code="invalid-credentials")
    repository.clear_throttle(session, key)
    repository.set_authenticated_at(session, actor.session_id, now)
    accesslog.record(
        session,
        replace(actor, authenticated_at=now),
        Access(kind="login", action="E", outcome_desc="step-up"),
    )
    return now


def require_recent_authentication(
    actor: Actor, now: dt.datetime, *, max_age_seconds: float | None = None
) -> None:
    """For sensitive use cases (break-the-glass, exports, role changes, new tokens): the
    caller must have authenticated within ``max_age_seconds`` (default
    ``HDS_STEP_UP_SECONDS``), in a browser session. Operator commands (system actor) pass.
    Raises Forbidden (403, code "step-up-required"); the client then calls
    ``POST /api/v1/auth/reauthenticate`` (or logs in again through its provider) and retries.
    """
    if actor.kind == "system":
        return
    limit = get_settings().step_up_seconds if max_age_seconds is None else max_age_seconds
    if actor.kind != "user" or not actor.authenticated_within(limit, now=now):
        raise Forbidden(
            "This action needs a recent authentication.",
            code="step-up-required",
            extra={"max_age_seconds": int(limit), "reauthenticate": "/api/v1/auth/reauthenticate"},
        )


def regenerate_recovery_codes(
    *, session: Session, settings: Settings, actor: Actor, now: dt.datetime
) -> list[str]:
    """New recovery codes (shown once); the unused old ones stop working."""
    require_recent_authentication(actor, now, max_age_seconds=settings.step_up_seconds)
    assert actor.user_id is not None
    codes = credentials.new_recovery_codes()
    hashes = [credentials.recovery_code_hash(c.replace("-", "")) for c in codes]
    repository.replace_recovery_codes(session, actor.user_id, hashes, now)
    user = repository.user_by_id(session, actor.user_id)
    assert user is not None
    accesslog.record(session, actor, _user_access("update", "U", user, desc="recovery-codes"))
    return codes


# -- Pro Santé Connect and other OpenID providers --------------------------------------------


def _client(runtime: IdentityRuntime, provider: str) -> OidcClient:
    client = runtime.oidc.get(provider)
    if client is None:
        raise NotFound("No such identity provider.", code="unknown-provider")
    return client


def providers(runtime: IdentityRuntime) -> list[tuple[str, str]]:
    """(name, display name) of the configured providers."""
    found = []
    for name in sorted(runtime.settings.oidc_providers):
        client = runtime.oidc.get(name)
        if client is not None:
            found.append((name, client.config.display_name))
    return found


def _pkce_verifier() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(48)).rstrip(b"=").decode()


@dataclass(frozen=True, kw_only=True)
class OidcStart:
    authorization_url: str
    binding_token: str  # the pre-authentication cookie's value
    max_age_seconds: int


def begin_oidc_login(
    *,
    session: Session,
    runtime: IdentityRuntime,
    request: RequestInfo,
    provider: str,
    now: dt.datetime,
) -> OidcStart:
    """``GET /api/v1/auth/oidc/{provider}/login``: state, nonce and PKCE verifier are kept
    server-side, bound to a fresh pre-authentication cookie."""
    runtime.limiter.hit(request.client_ip or "unknown")
    client = _client(runtime, provider)
    state, nonce, verifier = (
        secrets.token_urlsafe(32),
        secrets.token_urlsafe(32),
        _pkce_verifier(),
    )
    binding = credentials.new_secret_token()
    try:
        url = client.authorization_url(state=state, nonce=nonce, code_verifier=verifier)
    except OidcError as exc:
        log.warning(
            "identity provider unavailable", extra={"provider": provider, "reason": exc.reason}
        )
        raise ServiceUnavailable(
            "The identity provider cannot be reached.", code="provider-unavailable"
        ) from None
    repository.purge_oidc_states(session, now)
    repository.add(
        session,
        OidcLoginState(
            binding_hash=credentials.sha256_hex(binding),
            provider=provider,
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            created_at=now,
            expires_at=now + PREAUTH_TTL,
        ),
    )
    return OidcStart(
        authorization_url=url,
        binding_token=binding,
        max_age_seconds=int(PREAUTH_TTL.total_seconds()),
    )


def complete_oidc_login(
    *,
    database: Database,
    session: Session,
    settings: Settings,
    runtime: IdentityRuntime,
    request: RequestInfo,
    provider: str,
    binding_token: str | None,
    params: Mapping[str, str],
    previous_token: str | None,
    now: dt.datetime,
) -> NewSession:
    """``GET /api/v1/auth/oidc/{provider}/callback``: check the state against the pending
    login of this browser, exchange the code (PKCE), validate the ID token and userinfo,
    link or create the user, open the session. Any failure: 401, no session, an audit entry."""
    runtime.limiter.hit(request.client_ip or "unknown")
    client = _client(runtime, provider)

    def refuse(reason: str, user: User | None = None) -> HdsError:
        accesslog.record_separately(
            database,
            _attempt_actor(request, user),
            Access(
                kind="login",
                action="E",
                outcome=Outcome.DENIED,
                outcome_desc=f"oidc:{provider}:{reason}",
            ),
        )
        return Unauthenticated(
            "The login with the identity provider failed.", code="oidc-login-failed"
        )

    if "error" in params:
        raise refuse("provider-error")
    if not binding_token or len(binding_token) > 128:
        raise refuse("state")
    with database.unit_of_work() as ledger:
        pending = repository.consume_oidc_state(
            ledger, credentials.sha256_hex(binding_token), provider, now
        )
        expected = (pending.state, pending.nonce, pending.code_verifier) if pending else None
    if expected is None:
        raise refuse("state")
    state, nonce, verifier = expected
    if not hmac.compare_digest(params.get("state", "").encode(), state.encode()):
        raise refuse("state")
    # RFC 9207: when the provider names itself in the response, it must be the one we asked.
    if "iss" in params and params["iss"] != client.config.issuer:
        raise refuse("issuer")
    code = params.get("code")
    if not code:
        raise refuse("code")
    try:
        tokens = client.exchange_code(code=code, code_verifier=verifier)
        claims = client.validate_id_token(str(tokens["id_token"]), nonce=nonce, now=now.timestamp())
        access_token = tokens.get("access_token")
        info = (
            client.userinfo(str(access_token), subject=str(claims["sub"]))
            if isinstance(access_token, str)
            else {}
        )
        identity = client.identity(claims, info)
    except OidcError as exc:
        raise refuse(exc.reason) from None
    user, problem = _federated_user(session, client, identity, now)
    if problem is not None:
        raise refuse(problem, user)
    assert user is not None
    return _open_session(
        session,
        settings=settings,
        user=user,
        method="oidc",
        provider=provider,
        second_factor=identity.strong,
        request=request,
        previous_token=previous_token,
        now=now,
        desc=f"oidc:{provider}" + (f":{identity.acr}" if identity.acr else ""),
    )


def _federated_user(
    session: Session, client: OidcClient, identity: FederatedIdentity, now: dt.datetime
) -> tuple[User | None, str | None]:
    """The user behind a federated identity: the one already linked; else (first login) the
    user with the same IDNPS or RPPS (invited by a coordinator); else a new active user with
    no group, if the provider allows creating users. Never matched by email."""
    link = repository.oidc_identity(session, identity.provider, identity.subject)
    user = repository.user_by_id(session, link.user_id) if link is not None else None
    if link is None:
        user = repository.user_by_practitioner_ids(
            session, idnps=identity.idnps, rpps=identity.rpps
        )
        if user is None:
            if not client.config.create_users:
                return None, "not-invited"
            email = identity.email
            if email is not None and repository.user_by_email(session, email) is not None:
                email = None
            user = User(
                email=email,
                display_name=identity.display_name[:200],
                rpps=identity.rpps,
                idnps=identity.idnps,
                profession=identity.profession,
                status="active",
                created_at=now,
                status_changed_at=now,
            )
            repository.add(session, user)
        link = OidcIdentity(
            provider=identity.provider, subject=identity.subject, user_id=user.id, created_at=now
        )
    assert user is not None
    if user.status == "invited":
        user.status, user.status_changed_at = "active", now
    if user.status != "active":
        return user, f"status:{user.status}"
    # The directory is the reference for practitioner data: refresh it at each login.
    if identity.profession is not None:
        user.profession = identity.profession
    user.idnps = user.idnps or identity.idnps
    user.rpps = user.rpps or identity.rpps
    link.last_login_at = now
    session.add(user)
    session.add(link)
    session.flush()
    return user, None


# -- personal access tokens ------------------------------------------------------------------


def parse_scopes(value: str | Sequence[str]) -> frozenset[Scope]:
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = set()
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        try:
            scopes.add(Scope(item))
        except ValueError:
            raise Unprocessable(
                f"Unknown scope {item[:20]!r}; use read, write, audit.", code="invalid-scope"
            ) from None
    if not scopes:
        raise Unprocessable("At least one scope is needed.", code="invalid-scope")
    return frozenset(scopes)


def _scopes_text(scopes: frozenset[Scope]) -> str:
    return ",".join(s.value for s in Scope if s in scopes)


def parse_lifetime(value: str | int | None) -> dt.timedelta:
    if value is None:
        return TOKEN_DEFAULT_LIFETIME
    try:
        lifetime = (
            dt.timedelta(seconds=value)
            if isinstance(value, int)
            else credentials.parse_duration(value)
        )
    except ValueError as exc:
        raise Unprocessable(str(exc).capitalize() + ".", code="invalid-expiry") from None
    if not TOKEN_MIN_LIFETIME <= lifetime <= TOKEN_MAX_LIFETIME:
        raise Unprocessable("A token lives between one minute and 366 days.", code="invalid-expiry")
    return lifetime


@dataclass(frozen=True, kw_only=True)
class CreatedToken:
    row: PersonalAccessToken
    token: str


def create_token(
    *,
    session: Session,
    settings: Settings,
    actor: Actor,
    user: User | None = None,
    name: str,
    scopes: str | Sequence[str],
    expires_in: str | int | None,
    now: dt.datetime,
) -> CreatedToken:
    """A personal access token for ``user`` (default: the caller). From the API it needs a
    browser session with a recent authentication; operators (system actor) may issue one for
    any active user. The token is returned once; only its SHA-256 is stored."""
    if actor.kind == "system":
        if user is None:
            raise BadRequest("Which user?", code="user-required")
        second_factor = True  # issued out of band by the operator
    else:
        if actor.kind != "user" or actor.user_id is None:
            raise Forbidden("Tokens are created from a browser session.", code="session-required")
        require_recent_authentication(actor, now, max_age_seconds=settings.step_up_seconds)
        user = repository.user_by_id(session, actor.user_id)
        second_factor = actor.second_factor
    if user is None or user.status != "active":
        raise Conflict("The user is not active.", code="user-inactive")
    label = name.strip()
    if not label or len(label) > 100:
        raise Unprocessable("A token name has 1 to 100 characters.", code="invalid-name")
    wanted = parse_scopes(scopes)
    lifetime = parse_lifetime(expires_in)
    token = credentials.new_personal_access_token()
    row = PersonalAccessToken(
        user_id=user.id,
        name=label,
        token_hash=credentials.sha256_hex(token),
        prefix=token[: len(credentials.PAT_PREFIX) + 4],
        scopes=_scopes_text(wanted),
        second_factor=second_factor,
        created_at=now,
        expires_at=now + lifetime,
    )
    repository.add(session, row)
    accesslog.record(session, actor, _token_access("C", row))
    return CreatedToken(row=row, token=token)


def _token_access(action: Literal["C", "D"], row: PersonalAccessToken) -> Access:
    return Access(
        kind="token",
        action=action,
        resource_type="PersonalAccessToken",
        resource_id=str(row.id),
        purpose_of_use="HOPERAT",
    )


def list_tokens(*, session: Session, actor: Actor) -> Sequence[PersonalAccessToken]:
    if actor.user_id is None or actor.kind not in {"user", "token"}:
        raise Unauthenticated()
    return repository.tokens_of_user(session, actor.user_id)


def revoke_token(*, session: Session, actor: Actor, token_id: uuid.UUID, now: dt.datetime) -> None:
    """Revoke one of the caller's tokens (idempotent for an already revoked one)."""
    if actor.user_id is None or actor.kind not in {"user", "token"}:
        raise Unauthenticated()
    row = repository.token_of_user(session, actor.user_id, token_id)
    if row is None:
        raise NotFound("No such token.", code="token-not-found")
    if repository.revoke_token(session, row.id, now):
        accesslog.record(session, actor, _token_access("D", row))


def token_state(
    row: PersonalAccessToken, now: dt.datetime
) -> Literal["active", "expired", "revoked"]:
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if now >= row.expires_at else "active"


# -- demo ------------------------------------------------------------------------------------

DEMO_DOMAIN = "demo.hdsapp.example"


@dataclass(frozen=True)
class DemoUser:
    key: str
    name: str
    role: Role
    profession: str | None
    rpps: str | None

    @property
    def email(self) -> str:
        return f"{self.key}@{DEMO_DOMAIN}"

    @property
    def password(self) -> str:
        return f"demo-{self.key}-password"

    @property
    def totp_secret(self) -> str:
        digest = hashlib.sha256(f"hdsapp demo totp {self.key}".encode()).digest()[:20]
        return base64.b32encode(digest).decode()


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("coordinator", "Camille Coordinatrice", Role.COORDINATOR, None, None),
    DemoUser("doctor", "Dr Paul Généraliste", Role.CLINICIAN, "10", "99800000010"),
    DemoUser("nurse", "Claire Infirmière", Role.CLINICIAN, "60", "99800000060"),
    DemoUser("pharmacist", "Lucie Pharmacienne", Role.CLINICIAN, "21", "99800000021"),
    DemoUser("auditor", "Alex Auditeur", Role.AUDITOR, None, None),
)


def seed_demo_users(
    *, session: Session, settings: Settings, actor: Actor, now: dt.datetime
) -> list[dict[str, Any]]:
    """The demo users with fixed, published credentials (demo only: refused in production).
    Idempotent: a second run resets them to the same credentials."""
    if settings.env == "production":
        raise Forbidden("Demo accounts are refused in production.", code="demo-in-production")
    seeded = []
    for demo in DEMO_USERS:
        user = repository.user_by_email(session, demo.email)
        if user is None:
            user = create_user(
                session=session,
                actor=actor,
                email=demo.email,
                display_name=demo.name,
                password=demo.password,
                rpps=demo.rpps,
                profession=demo.profession,
                now=now,
            ).user
        else:
            matches, _ = credentials.verify_password(user.password_hash, demo.password)
            if not matches:
                user.password_hash = credentials.hash_password(demo.password)
            user.status = "active"
        user.totp_secret = demo.totp_secret
        session.add(user)
        session.flush()
        seeded.append(
            {
                "email": demo.email,
                "password": demo.password,
                "totp_secret": demo.totp_secret,
                "role": demo.role.value,
            }
        )
    return seeded


# -- housekeeping ----------------------------------------------------------------------------

ENDED_SESSIONS_KEPT = dt.timedelta(days=30)


def purge_expired(*, session: Session, now: dt.datetime) -> dict[str, int]:
    """Rows deleted per table (see repository.purge); run hourly by hdsapp.identity.purge."""
    return repository.purge(session, now=now, keep=ENDED_SESSIONS_KEPT)
