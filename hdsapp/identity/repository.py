"""Every query of the identity domain.

Identity rows are read by their owner or by the authentication machinery only (a session by the
hash of its cookie, a token by the hash of its value, a user by email or practitioner
identifier); there is no cross-user listing here, hence no access-aware builder.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from hdsapp.models.auth_session import AuthSession
from hdsapp.models.login_throttle import LoginThrottle
from hdsapp.models.oidc_identity import OidcIdentity
from hdsapp.models.oidc_login_state import OidcLoginState
from hdsapp.models.personal_access_token import PersonalAccessToken
from hdsapp.models.rate_limit_counter import RateLimitCounter
from hdsapp.models.recovery_code import RecoveryCode
from hdsapp.models.user import User


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


# -- users -----------------------------------------------------------------------------------


def user_by_id(session: Session, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
    statement = select(User).where(col(User.id) == user_id)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(col(User.email) == email)).first()


def user_by_practitioner_ids(
    session: Session, *, idnps: str | None, rpps: str | None
) -> User | None:
    conditions = []
    if idnps:
        conditions.append(col(User.idnps) == idnps)
    if rpps:
        conditions.append(col(User.rpps) == rpps)
    if not conditions:
        return None
    return session.scalars(
        select(User).where(or_(*conditions)).order_by(col(User.created_at))
    ).first()


def add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


def consume_totp_step(session: Session, user_id: uuid.UUID, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) was used already: one atomic update,
    so two requests racing with the same code cannot both win."""
    result = session.execute(
        update(User)
        .where(
            col(User.id) == user_id,
            or_(col(User.totp_last_step).is_(None), col(User.totp_last_step) < step),
        )
        .values(totp_last_step=step)
    )
    return _rowcount(result) == 1


# -- recovery codes --------------------------------------------------------------------------


def consume_recovery_code(
    session: Session, user_id: uuid.UUID, code_hash: str, now: dt.datetime
) -> bool:
    result = session.execute(
        update(RecoveryCode)
        .where(
            col(RecoveryCode.user_id) == user_id,
            col(RecoveryCode.code_hash) == code_hash,
            col(RecoveryCode.used_at).is_(None),
        )
        .values(used_at=now)
    )
    return _rowcount(result) == 1


def replace_recovery_codes(
    session: Session, user_id: uuid.UUID, code_hashes: Sequence[str], now: dt.datetime
) -> None:
    session.execute(
        update(RecoveryCode)
        .where(col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None))
        .values(used_at=now)
    )
    for code_hash in code_hashes:
        session.add(RecoveryCode(user_id=user_id, code_hash=code_hash, created_at=now))
    session.flush()


def unused_recovery_codes(session: Session, user_id: uuid.UUID) -> int:
    rows = session.scalars(
        select(col(RecoveryCode.id)).where(
            col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None)
        )
    ).all()
    return len(rows)


# -- sessions --------------------------------------------------------------------------------


def session_by_hash(session: Session, token_hash: str) -> tuple[AuthSession, User] | None:
    row = session.execute(
        select(AuthSession, User)
        .join(User, col(User.id) == col(AuthSession.user_id))
        .where(col(AuthSession.token_hash) == token_hash)
    ).first()
    return None if row is None else (row[0], row[1])


def auth_session_by_id(session: Session, session_id: uuid.UUID) -> AuthSession | None:
    return session.scalars(select(AuthSession).where(col(AuthSession.id) == session_id)).first()


def revoke_session(session: Session, session_id: uuid.UUID, now: dt.datetime, reason: str) -> bool:
    result = session.execute(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return _rowcount(result) == 1


def revoke_user_sessions(
    session: Session, user_id: uuid.UUID, now: dt.datetime, reason: str
) -> int:
    result = session.execute(
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return _rowcount(result)


def touch_session(session: Session, session_id: uuid.UUID, now: dt.datetime) -> None:
    session.execute(
        update(AuthSession).where(col(AuthSession.id) == session_id).values(last_seen_at=now)
    )


def set_authenticated_at(session: Session, session_id: uuid.UUID, now: dt.datetime) -> None:
    session.execute(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id)
        .values(authenticated_at=now, last_seen_at=now)
    )


# -- personal access tokens ------------------------------------------------------------------


def token_by_hash(session: Session, token_hash: str) -> tuple[PersonalAccessToken, User] | None:
    row = session.execute(
        select(PersonalAccessToken, User)
        .join(User, col(User.id) == col(PersonalAccessToken.user_id))
        .where(col(PersonalAccessToken.token_hash) == token_hash)
    ).first()
    return None if row is None else (row[0], row[1])


def tokens_of_user(session: Session, user_id: uuid.UUID) -> Sequence[PersonalAccessToken]:
    return session.scalars(
        select(PersonalAccessToken)
        .where(col(PersonalAccessToken.user_id) == user_id)
        .order_by(col(PersonalAccessToken.created_at).desc(), col(PersonalAccessToken.id))
    ).all()


def token_of_user(
    session: Session, user_id: uuid.UUID, token_id: uuid.UUID
) -> PersonalAccessToken | None:
    return session.scalars(
        select(PersonalAccessToken).where(
            col(PersonalAccessToken.id) == token_id,
            col(PersonalAccessToken.user_id) == user_id,
        )
    ).first()


def revoke_token(session: Session, token_id: uuid.UUID, now: dt.datetime) -> bool:
    result = session.execute(
        update(PersonalAccessToken)
        .where(
            col(PersonalAccessToken.id) == token_id, col(PersonalAccessToken.revoked_at).is_(None)
        )
        .values(revoked_at=now)
    )
    return _rowcount(result) == 1


def revoke_user_tokens(session: Session, user_id: uuid.UUID, now: dt.datetime) -> int:
    result = session.execute(
        update(PersonalAccessToken)
        .where(
            col(PersonalAccessToken.user_id) == user_id,
            col(PersonalAccessToken.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    return _rowcount(result)


def touch_token(session: Session, token_id: uuid.UUID, now: dt.datetime) -> None:
    session.execute(
        update(PersonalAccessToken)
        .where(col(PersonalAccessToken.id) == token_id)
        .values(last_used_at=now)
    )


# -- OpenID Connect --------------------------------------------------------------------------


def oidc_identity(session: Session, provider: str, subject: str) -> OidcIdentity | None:
    return session.scalars(
        select(OidcIdentity).where(
            col(OidcIdentity.provider) == provider, col(OidcIdentity.subject) == subject
        )
    ).first()


def consume_oidc_state(
    session: Session, binding_hash: str, provider: str, now: dt.datetime
) -> OidcLoginState | None:
    """The pending login bound to this browser, marked consumed; None if there is none, it
    expired, or it was consumed already (a replayed callback)."""
    result = session.execute(
        update(OidcLoginState)
        .where(
            col(OidcLoginState.binding_hash) == binding_hash,
            col(OidcLoginState.provider) == provider,
            col(OidcLoginState.consumed_at).is_(None),
            col(OidcLoginState.expires_at) > now,
        )
        .values(consumed_at=now)
    )
    if _rowcount(result) != 1:
        return None
    return session.scalars(
        select(OidcLoginState).where(col(OidcLoginState.binding_hash) == binding_hash)
    ).first()


def purge_oidc_states(session: Session, before: dt.datetime) -> None:
    rows = session.scalars(
        select(OidcLoginState).where(col(OidcLoginState.expires_at) < before).limit(500)
    ).all()
    for row in rows:
        session.delete(row)
    session.flush()


# -- login throttle --------------------------------------------------------------------------


def throttle(session: Session, key_hash: str, *, for_update: bool = False) -> LoginThrottle | None:
    statement = select(LoginThrottle).where(col(LoginThrottle.key_hash) == key_hash)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def ensure_throttle(session: Session, key_hash: str, now: dt.datetime) -> LoginThrottle:
    """The throttle row of ``key_hash``, created if missing, locked for update."""
    table = LoginThrottle.__table__  # type: ignore[attr-defined]
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    session.execute(
        dialect.insert(table)
        .values(
            key_hash=key_hash,
            failures=0,
            window_started_at=now,
            window_failures=0,
            last_failure_at=now,
            next_allowed_at=now,
        )
        .on_conflict_do_nothing(index_elements=[table.c.key_hash])
    )
    row = throttle(session, key_hash, for_update=True)
    assert row is not None
    session.refresh(row)
    return row


def clear_throttle(session: Session, key_hash: str) -> None:
    row = throttle(session, key_hash)
    if row is not None:
        session.delete(row)
        session.flush()


# -- housekeeping ----------------------------------------------------------------------------


def purge(session: Session, *, now: dt.datetime, keep: dt.timedelta) -> dict[str, int]:
    """Delete what no longer serves: pending OpenID logins past their expiry, rate-limit
    counters past their window, throttles idle for a day, and sessions ended more than
    ``keep`` ago (the audit log keeps the logins and logouts)."""
    statements = {
        "oidc_login_state": delete(OidcLoginState).where(col(OidcLoginState.expires_at) < now),
        "rate_limit_counter": delete(RateLimitCounter).where(
            col(RateLimitCounter.expires_at) < now
        ),
        "login_throttle": delete(LoginThrottle).where(
            col(LoginThrottle.next_allowed_at) < now - dt.timedelta(days=1),
            col(LoginThrottle.last_failure_at) < now - dt.timedelta(days=1),
        ),
        "auth_session": delete(AuthSession).where(
            or_(
                col(AuthSession.expires_at) < now - keep,
                col(AuthSession.revoked_at) < now - keep,
            )
        ),
    }
    return {name: _rowcount(session.execute(s)) for name, s in statements.items()}
