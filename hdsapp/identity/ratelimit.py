"""Abuse controls on the authentication endpoints, shared by every process.

- Per client IP: a fixed window of ``HDS_AUTH_REQUESTS_PER_MINUTE`` requests, counted by the
  ``limits`` library. Storage: Redis when ``HDS_RATE_LIMIT_URL`` (or a Redis
  ``HDS_BROKER_URL``) is set; otherwise :class:`DatabaseStorage`, a ``limits`` storage over the
  ``rate_limit_counter`` table (one atomic upsert per hit), so every API process on SQLite or
  PostgreSQL sees the same counters. ``limits`` has no SQL storage of its own.
- Per account name: a growing delay after a few consecutive failures (see :func:`delay_after`)
  and at most ``HDS_AUTH_FAILURES_PER_HOUR`` failures an hour, kept in ``login_throttle`` by the
  service. A delay rather than a lock-out: an attacker cannot lock a clinician out for long.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
from typing import Any

from limits import RateLimitItemPerMinute
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import case, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from hdsapp.core.db import Database, UTCDateTime, utcnow
from hdsapp.core.errors import TooManyRequests
from hdsapp.models.rate_limit_counter import RateLimitCounter

FREE_FAILURES = 5
MAX_DELAY_SECONDS = 15 * 60
_PURGE_EVERY = 500
_table = RateLimitCounter.__table__  # type: ignore[attr-defined]


def delay_after(failures: int) -> int:
    """Seconds to wait after ``failures`` consecutive failures: none for the first few, then
    1, 2, 4 ... seconds, at most 15 minutes."""
    if failures < FREE_FAILURES:
        return 0
    return int(min(2 ** (failures - FREE_FAILURES), MAX_DELAY_SECONDS))


def too_many(
    retry_after: float, detail: str = "Too many attempts; try again later."
) -> TooManyRequests:
    seconds = max(1, math.ceil(retry_after))
    return TooManyRequests(
        detail, extra={"retry_after": seconds}, headers={"Retry-After": str(seconds)}
    )


class DatabaseStorage(Storage):
    """Fixed-window counters for ``limits`` in the application database.

    Each call runs in its own short transaction: call it before the request's unit of work
    starts (SQLite allows one writer at a time).
    """

    def __init__(self, database: Database) -> None:
        super().__init__(None)
        self.database = database
        self._calls = itertools.count(1)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = utcnow()
        dialect = sqlite if self.database.backend == "sqlite" else postgresql
        insert = dialect.insert(_table).values(
            key=key, count=amount, expires_at=now + dt.timedelta(seconds=expiry)
        )
        expired = _table.c.expires_at <= _utc(now)
        statement = insert.on_conflict_do_update(
            index_elements=[_table.c.key],
            set_={
                "count": case(
                    (expired, insert.excluded.count), else_=_table.c.count + insert.excluded.count
                ),
                "expires_at": case(
                    (expired, insert.excluded.expires_at), else_=_table.c.expires_at
                ),
            },
        ).returning(_table.c.count)
        with self.database.unit_of_work() as session:
            count: int = session.execute(statement).scalar_one()
            if next(self._calls) % _PURGE_EVERY == 0:
                session.execute(delete(_table).where(_table.c.expires_at <= _utc(now)))
        return count

    def _row(self, key: str) -> tuple[int, dt.datetime] | None:
        now = utcnow()
        with self.database.unit_of_work() as session:
            row = session.execute(
                select(_table.c.count, _table.c.expires_at).where(
                    _table.c.key == key, _table.c.expires_at > _utc(now)
                )
            ).first()
        return None if row is None else (int(row[0]), row[1])

    def get(self, key: str) -> int:
        row = self._row(key)
        return 0 if row is None else row[0]

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return time.time() if row is None else row[1].timestamp()

    def check(self) -> bool:
        try:
            with self.database.session() as session:
                session.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.database.unit_of_work() as session:
            result: Any = session.execute(delete(_table))
            return int(result.rowcount)

    def clear(self, key: str) -> None:
        with self.database.unit_of_work() as session:
            session.execute(delete(_table).where(_table.c.key == key))


def _utc(moment: dt.datetime) -> Any:
    """A bound datetime typed like the column, so SQLite stores and compares it the same way."""
    return literal(moment, UTCDateTime())


class AuthRateLimiter:
    """The per-IP limit of the authentication endpoints."""

    def __init__(self, storage: Storage, per_minute: int) -> None:
        self.storage = storage
        self.limiter = FixedWindowRateLimiter(storage)
        self.item = RateLimitItemPerMinute(per_minute, namespace="hdsapp-auth")

    @classmethod
    def create(cls, *, url: str, database: Database, per_minute: int) -> AuthRateLimiter:
        storage = storage_from_string(url) if url else DatabaseStorage(database)
        assert isinstance(storage, Storage)
        return cls(storage, per_minute)

    def hit(self, client: str) -> None:
        """Count one request from ``client``; raise 429 with Retry-After over the limit."""
        if not self.limiter.hit(self.item, "ip", client):
            reset, _remaining = self.limiter.get_window_stats(self.item, "ip", client)
            raise too_many(reset - time.time())
