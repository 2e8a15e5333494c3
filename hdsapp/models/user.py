import datetime as dt
import uuid

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow

USER_STATUSES = ("invited", "active", "suspended", "deactivated")


class User(SQLModel, table=True):
    """A person who can log in: practitioner identity, local credentials, status.

    The email is stored lower-cased and is never the key of a federated account (Pro Santé
    Connect accounts are linked by IDNPS/RPPS, see ``oidc_identity``).
    """

    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint(
            "status IN ('invited', 'active', 'suspended', 'deactivated')", name="status"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Lower-cased; None for an account created by a provider that gave no address.
    email: str | None = Field(default=None, max_length=254, unique=True)
    display_name: str = Field(max_length=200)
    rpps: str | None = Field(default=None, max_length=11, unique=True)
    idnps: str | None = Field(default=None, max_length=20, unique=True)
    profession: str | None = Field(default=None, max_length=4)
    status: str = Field(default="active", max_length=16)
    # argon2id, PHC string format; None for accounts that only log in through a provider.
    password_hash: str | None = Field(default=None, max_length=255)
    totp_secret: str | None = Field(default=None, max_length=64)
    # The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step: int | None = Field(default=None)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status_changed_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
