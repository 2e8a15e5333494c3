"""OpenID Connect relying party: discovery, authorization request, code exchange, ID token and
userinfo validation. authlib builds the requests (PKCE S256, client authentication) and joserfc
verifies the signatures; every check of OpenID Connect Core §3.1.3.7 is made here, explicitly.

A provider is configured in ``HDS_OIDC_PROVIDERS`` (hdsapp.config.OidcProviderSettings). The
"psc" profile is Pro Santé Connect: discovery at ``{issuer}/.well-known/wallet-openid-
configuration``, ``scope=openid scope_all``, ``acr_values=eidas1``, the account keyed by
``SubjectNameID`` (the IDNPS) and the profession read from
``SubjectRefPro.exercices[].codeProfession``. Nothing here touches the database.
"""

from __future__ import annotations

import hmac
import json
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from hdsapp.config import OidcProviderSettings
from hdsapp.identity import professions

PSC_DISCOVERY_PATH = "/.well-known/wallet-openid-configuration"
STANDARD_DISCOVERY_PATH = "/.well-known/openid-configuration"
METADATA_TTL_SECONDS = 3600
JWKS_REFRESH_MIN_SECONDS = 60
MAX_RESPONSE_BYTES = 256 * 1024


class OidcError(Exception):
    """A refused login. ``reason`` is a short code for the audit log and the tests; the client
    sees a generic message."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    """A provider's settings with the profile's defaults applied."""

    name: str
    profile: str
    display_name: str
    issuer: str
    client_id: str
    client_secret: str
    discovery_url: str
    redirect_uri: str
    scopes: tuple[str, ...]
    acr_values: tuple[str, ...]
    algorithms: tuple[str, ...]
    allowed_professions: frozenset[str] | None
    token_endpoint_auth_method: str
    tls_client_cert: str | None
    tls_client_key: str | None
    tls_ca_file: str | None
    create_users: bool
    leeway_seconds: int
    timeout_seconds: float

    @property
    def is_psc(self) -> bool:
        return self.profile == "psc"


def resolve_provider(name: str, raw: OidcProviderSettings, *, public_url: str) -> ProviderConfig:
    psc = raw.profile == "psc"
    secret = raw.client_secret
    if raw.client_secret_file is not None:
        secret = raw.client_secret_file.read_text(encoding="utf-8").strip()
    default_scopes = ("openid", "scope_all") if psc else ("openid", "profile", "email")
    default_acr = "eidas1" if psc else ""
    acr = raw.acr_values if raw.acr_values is not None else default_acr
    allowed = raw.allowed_professions
    if allowed is None and psc:
        allowed = list(professions.professions())
    discovery = raw.discovery_url or raw.issuer + (
        PSC_DISCOVERY_PATH if psc else STANDARD_DISCOVERY_PATH
    )
    return ProviderConfig(
        name=name,
        profile=raw.profile,
        display_name=raw.display_name or ("Pro Santé Connect" if psc else name),
        issuer=raw.issuer,
        client_id=raw.client_id,
        client_secret=secret,
        discovery_url=discovery,
        redirect_uri=raw.redirect_uri
        or f"{public_url.rstrip('/')}/api/v1/auth/oidc/{name}/callback",
        scopes=tuple(raw.scopes) if raw.scopes is not None else default_scopes,
        acr_values=tuple(acr.split()),
        algorithms=tuple(raw.id_token_algorithms),
        allowed_professions=None if allowed is None else frozenset(allowed),
        token_endpoint_auth_method=raw.token_endpoint_auth_method,
        tls_client_cert=str(raw.tls_client_cert) if raw.tls_client_cert else None,
        tls_client_key=str(raw.tls_client_key) if raw.tls_client_key else None,
        tls_ca_file=str(raw.tls_ca_file) if raw.tls_ca_file else None,
        create_users=raw.create_users,
        leeway_seconds=raw.leeway_seconds,
        timeout_seconds=raw.timeout_seconds,
    )


@dataclass(frozen=True, kw_only=True)
class FederatedIdentity:
    """Who the provider says logged in, after every check passed."""

    provider: str
    subject: str  # the account key: SubjectNameID for Pro Santé Connect, else ``sub``
    idnps: str | None
    rpps: str | None
    profession: str | None
    display_name: str
    email: str | None
    acr: str | None
    strong: bool  # the provider asserted an acr we require (eidas1 for PSC)


class OidcClient:
    """One provider: cached discovery document and keys, and the three calls of a login."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: KeySet | None = None
        self._jwks_at = 0.0

    # -- HTTP ------------------------------------------------------------------------------

    def _verify(self) -> ssl.SSLContext | bool:
        config = self.config
        if not (config.tls_ca_file or config.tls_client_cert):
            return True
        context = ssl.create_default_context(cafile=config.tls_ca_file)
        if config.tls_client_cert:
            # Mutual TLS: the certificate issued by the ANS for this client (PSC offers it at
            # the token endpoint).
            context.load_cert_chain(config.tls_client_cert, config.tls_client_key)
        return context

    def _http(self) -> httpx.Client:
        return httpx.Client(
            timeout=self.config.timeout_seconds, verify=self._verify(), follow_redirects=False
        )

    def _get_json(self, url: str, *, reason: str) -> dict[str, Any]:
        try:
            with self._http() as client:
                response = client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError(reason, f"{type(exc).__name__}") from None
        if response.status_code != 200 or len(response.content) > MAX_RESPONSE_BYTES:
            raise OidcError(reason, f"status {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise OidcError(reason, "not JSON") from None
        if not isinstance(data, dict):
            raise OidcError(reason, "not a JSON object")
        return data

    # -- discovery and keys ----------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            fresh = time.monotonic() - self._metadata_at < METADATA_TTL_SECONDS
            if self._metadata is not None and fresh:
                return self._metadata
        data = self._get_json(self.config.discovery_url, reason="discovery")
        # The issuer is pinned: a discovery document naming another issuer is refused
        # (OpenID Connect Discovery §4.3).
        if data.get("issuer") != self.config.issuer:
            raise OidcError("discovery", "issuer mismatch")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(data.get(name), str):
                raise OidcError("discovery", f"no {name}")
        with self._lock:
            self._metadata, self._metadata_at = data, time.monotonic()
        return data

    def keys(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            recent = time.monotonic() - self._jwks_at < JWKS_REFRESH_MIN_SECONDS
            if self._jwks is not None and (not refresh or recent):
                return self._jwks
        data = self._get_json(str(self.metadata()["jwks_uri"]), reason="jwks")
        try:
            keyset = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise OidcError("jwks", "unreadable key set") from None
        with self._lock:
            self._jwks, self._jwks_at = keyset, time.monotonic()
        return keyset

    # -- the login -------------------------------------------------------------------------

    def _oauth(self) -> OAuth2Client:
        config = self.config
        # RFC 8705 tls_client_auth: the client certificate authenticates (in the TLS handshake,
        # see _verify), the body names the client, like a public client's request.
        method = config.token_endpoint_auth_method
        return OAuth2Client(
            client_id=config.client_id,
            client_secret=config.client_secret or None,
            token_endpoint_auth_method="none" if method == "tls_client_auth" else method,
            scope=" ".join(config.scopes),
            redirect_uri=config.redirect_uri,
            code_challenge_method="S256",
            timeout=config.timeout_seconds,
            verify=self._verify(),
        )

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        extra: dict[str, str] = {}
        if self.config.acr_values:
            extra["acr_values"] = " ".join(self.config.acr_values)
        with self._oauth() as oauth:
            url, _state = oauth.create_authorization_url(
                self.metadata()["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
                **extra,
            )
        return str(url)

    def exchange_code(self, *, code: str, code_verifier: str) -> dict[str, Any]:
        try:
            with self._oauth() as oauth:
                token = oauth.fetch_token(
                    self.metadata()["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OidcError:
            raise
        except Exception as exc:  # authlib's OAuthError, httpx errors, bad JSON
            raise OidcError("token", type(exc).__name__) from None
        data = dict(token)
        if not isinstance(data.get("id_token"), str):
            raise OidcError("token", "no id_token")
        return data

    def validate_id_token(self, id_token: str, *, nonce: str, now: float) -> dict[str, Any]:
        config = self.config
        try:
            try:
                token = jwt.decode(id_token, self.keys(), algorithms=list(config.algorithms))
            except InvalidKeyIdError:
                # The provider may have rotated its keys: fetch them again, once.
                token = jwt.decode(
                    id_token, self.keys(refresh=True), algorithms=list(config.algorithms)
                )
        except JoseError as exc:
            raise OidcError("signature", exc.error) from None
        except (ValueError, TypeError):
            raise OidcError("signature", "malformed") from None
        if token.header.get("alg") not in config.algorithms:
            raise OidcError("signature", "algorithm")
        claims = dict(token.claims)
        if claims.get("iss") != config.issuer:
            raise OidcError("issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if config.client_id not in audiences:
            raise OidcError("audience")
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != config.client_id:
            raise OidcError("audience", "azp")
        registry = jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=config.leeway_seconds,
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise OidcError(
                "time" if exc.error != "missing_claim" else "claims", exc.error
            ) from None
        presented = claims.get("nonce")
        if not isinstance(presented, str) or not hmac.compare_digest(
            presented.encode(), nonce.encode()
        ):
            raise OidcError("nonce")
        if config.acr_values and claims.get("acr") not in config.acr_values:
            raise OidcError("acr")
        return claims

    def userinfo(self, access_token: str, *, subject: str) -> dict[str, Any]:
        endpoint = self.metadata().get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        try:
            with self._http() as client:
                response = client.get(
                    endpoint,
                    headers={
                        "Authorization": f"Bearer {access_token}",
                        "Accept": "application/json",
                    },
                )
        except httpx.HTTPError as exc:
            raise OidcError("userinfo", type(exc).__name__) from None
        if response.status_code != 200 or len(response.content) > MAX_RESPONSE_BYTES:
            raise OidcError("userinfo", f"status {response.status_code}")
        claims = self._userinfo_claims(response)
        # OpenID Connect Core §5.3.2: the userinfo sub must be the ID token's.
        if claims.get("sub") != subject:
            raise OidcError("userinfo", "sub mismatch")
        return claims

    def _userinfo_claims(self, response: httpx.Response) -> dict[str, Any]:
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if media_type == "application/jwt":
            try:
                token = jwt.decode(
                    response.text, self.keys(), algorithms=list(self.config.algorithms)
                )
            except (JoseError, ValueError, TypeError):
                raise OidcError("userinfo", "signature") from None
            claims = dict(token.claims)
            if "iss" in claims and claims["iss"] != self.config.issuer:
                raise OidcError("userinfo", "issuer")
            return claims
        try:
            data = json.loads(response.content)
        except ValueError:
            raise OidcError("userinfo", "not JSON") from None
        if not isinstance(data, dict):
            raise OidcError("userinfo", "not a JSON object")
        return data

    # -- who logged in ---------------------------------------------------------------------

    def identity(self, id_claims: Mapping[str, Any], info: Mapping[str, Any]) -> FederatedIdentity:
        config = self.config
        merged = {**info, **{k: v for k, v in id_claims.items() if k not in info}}
        acr = id_claims.get("acr")
        strong = bool(config.acr_values) and acr in config.acr_values
        name = " ".join(
            str(merged[k]) for k in ("given_name", "family_name") if merged.get(k)
        ) or str(merged.get("name") or "")
        if config.is_psc:
            return self._psc_identity(merged, acr=acr, strong=strong, name=name)
        email = merged.get("email") if merged.get("email_verified") is True else None
        return FederatedIdentity(
            provider=config.name,
            subject=str(id_claims["sub"]),
            idnps=None,
            rpps=None,
            profession=None,
            display_name=name or str(id_claims["sub"]),
            email=str(email).lower() if email else None,
            acr=acr if isinstance(acr, str) else None,
            strong=strong,
        )

    def _psc_identity(
        self, claims: Mapping[str, Any], *, acr: object, strong: bool, name: str
    ) -> FederatedIdentity:
        subject = claims.get("SubjectNameID")
        if not isinstance(subject, str) or not subject:
            raise OidcError("claims", "no SubjectNameID")
        rpps = None
        for other in claims.get("otherIds") or []:
            if isinstance(other, dict) and other.get("origine") == "RPPS":
                rpps = str(other.get("identifiant") or "") or None
        if rpps is None and len(subject) == 12 and subject.startswith("8"):
            rpps = subject[1:]  # the IDNPS of an RPPS professional is "8" + the RPPS number
        codes = []
        refpro = claims.get("SubjectRefPro")
        exercices = refpro.get("exercices") if isinstance(refpro, dict) else None
        for exercice in exercices if isinstance(exercices, list) else []:
            if isinstance(exercice, dict) and exercice.get("codeProfession"):
                codes.append(str(exercice["codeProfession"]))
        allowed = self.config.allowed_professions
        chosen = [c for c in codes if allowed is None or c in allowed]
        if not chosen:
            raise OidcError("profession")
        return FederatedIdentity(
            provider=self.config.name,
            subject=subject,
            idnps=subject,
            rpps=rpps,
            profession=chosen[0],
            display_name=name or subject,
            email=None,
            acr=acr if isinstance(acr, str) else None,
            strong=strong,
        )


class OidcClients:
    """The configured providers of one application, with their caches."""

    def __init__(self, providers: Mapping[str, OidcProviderSettings], *, public_url: str) -> None:
        self._raw = dict(providers)
        self._public_url = public_url
        self._clients: dict[str, OidcClient] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> OidcClient | None:
        if name not in self._raw:
            return None
        with self._lock:
            if name not in self._clients:
                config = resolve_provider(name, self._raw[name], public_url=self._public_url)
                self._clients[name] = OidcClient(config)
            return self._clients[name]
