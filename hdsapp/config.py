"""The one Settings class: every ``HDS_*`` variable, with embedded defaults.

Defaults give a single-machine deployment that needs no other server: SQLite under ``var/``,
local secret files created by ``hdsapp init``, and an embedded Celery broker. ``HDS_ENV=production``
turns the defaults that are only safe on a laptop into start-up errors.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "HDS_"
# The test suite reads its own variables; they are not settings of the service.
_RESERVED_PREFIXES = ("HDS_TEST_",)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the variable and what to set."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _json_or_file(value: object) -> object:
    """A JSON document given inline (starting with ``{``) or as the path of a file holding it."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return {}
    if not text.startswith("{"):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None


class OidcProviderSettings(BaseModel):
    """One OpenID provider of ``HDS_OIDC_PROVIDERS`` (see README, "Identity").

    ``profile`` "psc" gives the Pro Santé Connect defaults (discovery at
    ``{issuer}/.well-known/wallet-openid-configuration``, ``scope=openid scope_all``,
    ``acr_values=eidas1``, account keyed by ``SubjectNameID``, profession from
    ``SubjectRefPro``); "generic" a plain OpenID provider keyed by ``sub``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: Literal["psc", "generic"] = "generic"
    issuer: str = Field(pattern=r"^https?://[^\s?#]+[^/\s?#]$")
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: str = Field(default="", repr=False)
    client_secret_file: Path | None = None
    display_name: str = ""
    discovery_url: str = ""
    redirect_uri: str = ""
    scopes: list[str] | None = None
    acr_values: str | None = None
    id_token_algorithms: list[str] = Field(default=["RS256"], min_length=1)
    allowed_professions: list[str] | None = None
    token_endpoint_auth_method: Literal[
        "client_secret_basic", "client_secret_post", "tls_client_auth", "none"
    ] = "client_secret_basic"  # noqa: S105 - a method name, not a secret
    tls_client_cert: Path | None = None
    tls_client_key: Path | None = None
    tls_ca_file: Path | None = None
    create_users: bool = True
    leeway_seconds: int = Field(default=60, ge=0, le=300)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @field_validator("id_token_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"unsupported ID token algorithms {unknown}; use {sorted(allowed)}")
        return value

    @model_validator(mode="after")
    def _client_authentication(self) -> OidcProviderSettings:
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            raise ValueError("tls_client_cert and tls_client_key go together")
        mtls = self.token_endpoint_auth_method == "tls_client_auth"  # noqa: S105 - a name
        if mtls and self.tls_client_cert is None:
            raise ValueError("tls_client_auth needs tls_client_cert and tls_client_key")
        if self.client_secret and self.client_secret_file is not None:
            raise ValueError("give client_secret or client_secret_file, not both")
        return self


# The provider's name appears in paths (/api/v1/auth/oidc/{name}/login) and in the audit log.
OidcProviderName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    env: Literal["development", "production"] = "development"
    debug: bool = False
    data_dir: Path = Path("var")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; SQLite under data_dir if empty"
    )
    broker_url: str = Field(default="", description="Celery broker; embedded broker if empty")
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    trusted_hosts: Annotated[list[str], NoDecode] = ["127.0.0.1", "localhost", "testserver"]
    forwarded_allow_ips: Annotated[list[str], NoDecode] = []
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    db_pool_size: int = Field(default=10, ge=1)
    worker_concurrency: int = Field(default=2, ge=1)
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    # Audit log (hdsapp.core.accesslog, hdsapp.auditing).
    audit_mode: Literal["simple", "sequencer"] = "simple"
    audit_origin: str = Field(
        default="",
        pattern=r"^[^\s+]{0,200}$",
        description="checkpoint origin line (no space, no '+'); from public_url if empty",
    )
    audit_signing_key_file: Path | None = Field(
        default=None, description="Ed25519 seed of the checkpoint signer; under secrets if unset"
    )
    audit_checkpoint_seconds: float = Field(default=1.0, gt=0)
    db_app_role: str = Field(
        default="",
        pattern=r"^([A-Za-z_][A-Za-z0-9_]{0,62})?$",
        description="PostgreSQL role of the service: the audit tables are revoked from it",
    )
    # Identity (hdsapp.identity): sessions, step-up, OpenID providers, abuse controls.
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_max_hours: int = Field(default=12, ge=1, le=24 * 31)
    step_up_seconds: int = Field(default=300, ge=30, le=3600)
    oidc_providers: Annotated[dict[OidcProviderName, OidcProviderSettings], NoDecode] = Field(
        default_factory=dict, description="JSON object, or the path of a JSON file"
    )
    rate_limit_url: str = Field(
        default="", description="redis:// storage of the rate limits; the database if empty"
    )
    auth_requests_per_minute: int = Field(default=60, ge=1)
    auth_failures_per_hour: int = Field(default=100, ge=1)
    # Encryption at rest (hdsapp.core.crypto.keyring, hdsapp.keys; SECURITY.md).
    key_provider: Literal["local", "pkcs11"] = "local"
    root_key_file: Path | None = Field(
        default=None, description="local provider's root key file; under secrets if unset"
    )
    pkcs11_module: str = Field(default="", description="path of the PKCS#11 module (.so)")
    pkcs11_token_label: str = ""
    pkcs11_key_label: str = Field(default="hdsapp-root", min_length=1, max_length=64)
    pkcs11_pin_file: Path | None = Field(default=None, description="file holding the user PIN")
    dek_max_seals: int = Field(default=2**28, ge=1, le=2**32)
    key_cache_seconds: float = Field(default=60.0, gt=0, le=3600)
    key_cache_entries: int = Field(default=1024, ge=1)
    shred_ledger_file: Path | None = Field(
        default=None, description="copy of the shred ledger kept outside the database"
    )

    # Case threads (hdsapp.threads): attachments and break-the-glass.
    max_attachment_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="largest attachment, in bytes"
    )
    attachments_allow_dicom: bool = True
    blob_dir: Path | None = Field(
        default=None, description="filesystem blob store of attachments; data_dir/blobs if unset"
    )
    break_glass_minutes: int = Field(default=60, ge=5, le=24 * 60)
    # Live updates (GET /api/v1/me/events): how long one stream lasts (the browser reconnects),
    # how often it looks for changes, how often it says it is alive.
    events_stream_seconds: float = Field(default=300.0, gt=0, le=3600)
    events_poll_seconds: float = Field(default=1.0, ge=0.05, le=60)
    events_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)

    @field_validator("trusted_hosts", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("oidc_providers", mode="before")
    @classmethod
    def _read_oidc_providers(cls, value: object) -> object:
        return _json_or_file(value)

    @field_validator("rate_limit_url")
    @classmethod
    def _known_rate_limit_storage(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "memory://")):
            raise ValueError("must be a redis:// or rediss:// URL (or empty: the database)")
        return value

    @property
    def effective_rate_limit_url(self) -> str:
        """Where rate limits are counted: Redis if configured (or the broker is Redis), else
        the database (empty string)."""
        if self.rate_limit_url:
            return self.rate_limit_url
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return ""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @property
    def blob_path(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'hdsapp.sqlite3').resolve()}"

    @property
    def root_key_path(self) -> Path:
        return self.root_key_file or self.secrets_dir / "root-keys"

    @property
    def shred_ledger_path(self) -> Path:
        return self.shred_ledger_file or self.secrets_dir / "shred-ledger.jsonl"

    def key_problems(self) -> list[str]:
        """What makes the key provider settings unusable (in any environment). A missing root
        key is found by the start-up self-check (hdsapp.keys), which refuses to serve."""
        problems = []
        if self.key_provider == "pkcs11":
            for name, value in (
                ("HDS_PKCS11_MODULE", self.pkcs11_module),
                ("HDS_PKCS11_TOKEN_LABEL", self.pkcs11_token_label),
                ("HDS_PKCS11_PIN_FILE", self.pkcs11_pin_file),
            ):
                if not value:
                    problems.append(f"{name}: required with HDS_KEY_PROVIDER=pkcs11")
        return problems

    @property
    def audit_signing_key_path(self) -> Path:
        return self.audit_signing_key_file or self.secrets_dir / "audit-signing.key"

    @property
    def effective_audit_origin(self) -> str:
        if self.audit_origin:
            return self.audit_origin
        host = urlsplit(self.public_url).netloc.rsplit("@", 1)[-1] or "localhost"
        return f"{host}/hdsapp-audit"

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url

    @property
    def effective_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite3').resolve()}"

    def production_problems(self) -> list[str]:
        """What makes this configuration unfit for ``HDS_ENV=production``."""
        if self.env != "production":
            return []
        problems = []
        if self.debug:
            problems.append("HDS_DEBUG: must be false in production")
        if urlsplit(self.public_url).scheme != "https":
            problems.append("HDS_PUBLIC_URL: must be an https:// URL in production")
        if "testserver" in self.trusted_hosts:
            problems.append("HDS_TRUSTED_HOSTS: set the host names clients use (not the default)")
        missing = [p.name for p in required_secret_files(self) if not p.exists()]
        if missing:
            problems.append(
                f"HDS_DATA_DIR: secrets missing in {self.secrets_dir} ({', '.join(missing)}); "
                "run `hdsapp init`"
            )
        problems.extend(self._identity_production_problems())
        return problems

    def _identity_production_problems(self) -> list[str]:
        problems = []
        if self.rate_limit_url.startswith("memory://"):
            problems.append(
                "HDS_RATE_LIMIT_URL: memory:// is per process; use Redis or leave empty"
            )
        for name, provider in self.oidc_providers.items():
            if urlsplit(provider.issuer).scheme != "https":
                problems.append(f"HDS_OIDC_PROVIDERS: {name}: the issuer must be https://")
        return problems


def required_secret_files(settings: Settings) -> list[Path]:
    return [settings.secrets_dir / "app.key"]


def _unknown_variables(environ: dict[str, str]) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        name
        for name in environ
        if name.startswith(ENV_PREFIX)
        and not name.startswith(_RESERVED_PREFIXES)
        and name not in known
    )


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from the environment; raise ConfigError naming every bad variable."""
    env = dict(os.environ if environ is None else environ)
    problems = [f"{name}: unknown setting" for name in _unknown_variables(env)]
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(_from_env(env))
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
    if settings is not None:
        problems.extend(settings.production_problems())
        problems.extend(settings.key_problems())
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def _from_env(env: dict[str, str]) -> dict[str, object]:
    # Validating an explicit mapping (rather than letting pydantic-settings read os.environ)
    # makes load_settings testable with any environment and keeps one parsing path.
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
    return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
