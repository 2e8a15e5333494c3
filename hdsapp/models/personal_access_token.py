import datetime as dt
import uuid

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class PersonalAccessToken(SQLModel, table=True):
    """A bearer token for scripts: scoped, expiring, revocable; only its SHA-256 is kept."""

    __tablename__ = "personal_access_token"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    # The first characters of the token ("hds_pat_" and four more), to recognise it in a list.
    prefix: str = Field(max_length=16)
    scopes: str = Field(max_length=64)  # comma-separated hdsapp.core.actor.Scope values
    # Whether it was issued under a strong authentication (a session with a second factor,
    # or an operator command).
    second_factor: bool = Field(default=False)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    last_used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
