import datetime as dt
import uuid

from sqlmodel import Field, SQLModel

from hdsapp.core.db import UTCDateTime, utcnow


class OidcLoginState(SQLModel, table=True):
    """An OpenID Connect login in progress: state, nonce and PKCE verifier, kept server-side.

    Bound to the browser by the SHA-256 of a short-lived pre-authentication cookie; consumed
    once by the callback.
    """

    __tablename__ = "oidc_login_state"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    binding_hash: str = Field(max_length=64, unique=True)
    provider: str = Field(max_length=64)
    state: str = Field(max_length=128)
    nonce: str = Field(max_length=128)
    code_verifier: str = Field(max_length=128)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime, index=True)
    consumed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
