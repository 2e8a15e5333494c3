import datetime as dt

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime


class LoginThrottle(SQLModel, table=True):
    """Failed logins per account name (existing or not): a growing delay, not a lock-out.

    Keyed by the SHA-256 of the normalised login name, so unknown names are throttled exactly
    like known ones and the table holds no address.
    """

    __tablename__ = "login_throttle"

    key_hash: str = Field(primary_key=True, max_length=64)
    failures: int = Field(default=0)  # consecutive failures since the last success
    window_started_at: dt.datetime = Field(sa_type=UTCDateTime)
    window_failures: int = Field(default=0)  # failures in the current hour
    last_failure_at: dt.datetime = Field(sa_type=UTCDateTime)
    next_allowed_at: dt.datetime = Field(sa_type=UTCDateTime)
