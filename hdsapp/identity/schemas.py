"""Request and response models of the identity endpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Generous bounds: the rules (12 to 128 characters...) are checked by the service, which
# answers the same generic 401 for a wrong password of any length.
_SECRET = Field(min_length=1, max_length=1024)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = _SECRET
    otp: str = Field(min_length=1, max_length=64, description="TOTP code or recovery code")


class ReauthenticateRequest(Strict):
    password: str = _SECRET
    otp: str = Field(min_length=1, max_length=64)


class Profession(BaseModel):
    code: str
    label: str | None


class UserPublic(BaseModel):
    id: uuid.UUID
    email: str | None
    display_name: str
    status: str
    rpps: str | None
    idnps: str | None
    profession: Profession | None


class LoginResponse(BaseModel):
    csrf_token: str
    user: UserPublic
    authenticated_at: dt.datetime
    expires_at: dt.datetime


class SessionPublic(BaseModel):
    csrf_token: str
    user: UserPublic
    method: str
    provider: str | None
    authenticated_at: dt.datetime
    idle_expires_at: dt.datetime
    expires_at: dt.datetime


class ReauthenticateResponse(BaseModel):
    authenticated_at: dt.datetime


class ProviderPublic(BaseModel):
    name: str
    display_name: str
    login_url: str


class ProviderList(BaseModel):
    items: list[ProviderPublic]
    next_cursor: str | None = None


class Membership(BaseModel):
    group_id: uuid.UUID
    role: str


class Authentication(BaseModel):
    kind: Literal["user", "token"]
    authenticated_at: dt.datetime | None
    second_factor: bool
    scopes: list[str]
    session_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None


class MePublic(UserPublic):
    groups: list[Membership]
    authentication: Authentication


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Literal["read", "write", "audit"]] = Field(min_length=1, max_length=3)
    expires_in: str | int | None = Field(
        default=None, description='seconds, or "15m", "1h", "30d"; default 30 days, max 366'
    )


class TokenPublic(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    state: Literal["active", "expired", "revoked"]


class TokenCreated(TokenPublic):
    token: str = Field(description="shown once; send it as Authorization: Bearer <token>")


class TokenList(BaseModel):
    items: list[TokenPublic]
    next_cursor: str | None = None


class RecoveryCodes(BaseModel):
    codes: list[str] = Field(description="shown once; each works once instead of a TOTP code")
