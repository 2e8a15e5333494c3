import datetime as dt

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime


class RateLimitCounter(SQLModel, table=True):
    """Fixed-window counters of the ``limits`` library when no Redis is configured.

    Shared by every process using the database (hdsapp.identity.ratelimit.DatabaseStorage).
    """

    __tablename__ = "rate_limit_counter"

    key: str = Field(primary_key=True, max_length=255)
    count: int = Field(default=0)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
