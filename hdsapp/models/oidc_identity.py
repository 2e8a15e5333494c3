import datetime as dt
import uuid

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class OidcIdentity(SQLModel, table=True):
    """An account at an OpenID provider (provider + subject) linked to a user.

    For Pro Santé Connect the subject is ``SubjectNameID`` (the IDNPS), never the email.
    """

    __tablename__ = "oidc_identity"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    provider: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_login_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
