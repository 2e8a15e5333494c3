"""A Pro Santé Connect-shaped OpenID provider for the tests.

The provider is the real, certified ``oidc-provider`` npm package (panva), configured in
``tests/support/oidc_provider/server.mjs`` to look like Pro Santé Connect (PSC): discovery also at
``{issuer}/.well-known/wallet-openid-configuration``, authorization code flow with PKCE (S256)
required, ``scope=openid scope_all``, ``acr`` = ``eidas1``, PSC-shaped userinfo claims, ID tokens
signed RS256 (an ES256 key is published as well).

Logging in needs no browser: the provider logs in the account named by ``login_hint`` (or chosen
with :meth:`RunningProvider.select_account`, else the first account) and consents on its own,
through its real interaction machinery; codes, tokens, PKCE checks and single-use codes are the
provider's own. :meth:`RunningProvider.authorize` follows the provider's redirects for a test.

For negative tests of the relying party, :meth:`RunningProvider.control` makes the provider rewrite
the ``id_token`` of the next token response (see :data:`TAMPER_MODES`).

Usage::

    with start_oidc_provider(client_id="hds", client_secret=SECRET,
                             redirect_uris=["http://testserver/auth/callback"]) as op:
        op.issuer                       # "http://127.0.0.1:PORT"
        callback = op.authorize(authorization_url, account="nurse")

If ``node``/``npm`` are missing (or the npm install fails), the caller is skipped, or fails when
the environment variable ``HDS_TEST_REQUIRE_SERVICES=1`` is set.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest

__all__ = [
    "ACR",
    "DEFAULT_ACCOUNTS",
    "PROVIDER_DIR",
    "TAMPER_MODES",
    "AuthorizationError",
    "OIDCProviderStartError",
    "OIDCProviderUnavailableError",
    "PscAccount",
    "RunningProvider",
    "TamperMode",
    "ensure_node_modules",
    "start_oidc_provider",
]

PROVIDER_DIR: Final = Path(__file__).resolve().parent / "oidc_provider"
REQUIRE_ENV: Final = "HDS_TEST_REQUIRE_SERVICES"
CONFIG_ENV: Final = "HDS_OIDC_PROVIDER_CONFIG"
_STAMP_NAME: Final = ".hdsapp-install-stamp"
_MIN_NODE_MAJOR: Final = 20

TamperMode = Literal[
    "wrong_issuer",
    "wrong_audience",
    "expired",
    "issued_in_future",
    "alg_none",
    "hs256_with_public_key",
    "unknown_kid",
    "nonce_mismatch",
    "missing_acr",
    "wrong_acr",
    "es256_published_key",
    "userinfo_wrong_sub",
    "reset",
]

#: What each mode does to the ``id_token`` of the next token response (anything not named is
#: kept; unless said otherwise the token is re-signed RS256 with the provider's published key
#: and kid). ``userinfo_wrong_sub`` acts on the next userinfo response instead.
TAMPER_MODES: Final[Mapping[str, str]] = {
    "wrong_issuer": "iss = 'https://attacker.invalid/auth/realms/esante-wallet'",
    "wrong_audience": "aud = 'another-relying-party' (and azp if present)",
    "expired": "iat = now - 7200, exp = now - 3600",
    "issued_in_future": "iat = now + 3600, exp = now + 7200",
    "alg_none": "header alg 'none', no kid, empty signature (unsecured JWT)",
    "hs256_with_public_key": (
        "header alg 'HS256', kid of the RSA key; HMAC-SHA256 keyed with the RSA public key as "
        "SPKI PEM text (key confusion)"
    ),
    "unknown_kid": "RS256 with a fresh RSA key that is not in the JWKS, kid 'unknown-...'",
    "nonce_mismatch": "nonce = 'tampered-<random>'",
    "missing_acr": "acr claim removed",
    "wrong_acr": "acr = 'eidas0'",
    "es256_published_key": (
        "header alg 'ES256', signed with the published EC P-256 key (valid signature, but an "
        "algorithm the client did not register)"
    ),
    "userinfo_wrong_sub": (
        "next userinfo response: sub = the sub of another account, the other claims unchanged "
        "(the id_token is untouched)"
    ),
    "reset": "clears the mode and the selected account",
}

ACR: Final = "eidas1"


class OIDCProviderUnavailableError(RuntimeError):
    """node/npm missing or not installable, with HDS_TEST_REQUIRE_SERVICES=1."""


class OIDCProviderStartError(RuntimeError):
    """The node process did not start or did not answer discovery in time."""


class AuthorizationError(RuntimeError):
    """The provider answered the authorization request without redirecting to the client."""

    def __init__(self, message: str, response: httpx.Response | None) -> None:
        super().__init__(message)
        self.response = response


# --------------------------------------------------------------------------------------------
# Accounts


@dataclass(frozen=True)
class PscAccount:
    """One account of the provider: ``claims`` is its userinfo document for ``scope_all``."""

    key: str
    claims: Mapping[str, Any]

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def subject_name_id(self) -> str:
        return str(self.claims["SubjectNameID"])

    @property
    def profession_codes(self) -> tuple[str, ...]:
        exercices = self.claims.get("SubjectRefPro", {}).get("exercices", [])
        return tuple(str(e["codeProfession"]) for e in exercices)


def _activity(
    *, structure_id: str, raison_sociale: str, secteur: str, mode: str = "L"
) -> dict[str, Any]:
    """A PSC ``activities[]`` entry (the real ones carry many empty strings, so do these)."""
    return {
        "codeModeExercice": mode,
        "codeSecteurDActivite": secteur,
        "codeSectionPharmacien": "",
        "codeRole": "",
        "numeroSiretSite": "",
        "numeroSirenSite": "",
        "numeroFinessSite": "",
        "numeroFinessetablissementJuridique": "",
        "identifiantTechniqueDeLaStructure": structure_id,
        "raisonSocialeSite": raison_sociale,
        "enseigneCommercialeSite": "",
        "complementDestinataire": "",
        "complementPointGeographique": "",
        "numeroVoie": "1",
        "indiceRepetitionVoie": "",
        "codeTypeDeVoie": "R",
        "libelleVoie": "DE LA SANTE",
        "mentionDistribution": "",
        "bureauCedex": "75013 PARIS",
        "codePostal": "75013",
        "codeCommune": "",
        "codePays": "",
        "telephone": "",
        "telephone2": "",
        "telecopie": "",
        "adresseEMail": "",
        "codeDepartement": "",
        "ancienIdentifiantDeLaStructure": "",
        "autoriteDEnregistrement": "",
    }


def _exercice(
    *,
    profession: str,
    categorie: str = "C",
    savoir_faire: str = "",
    civilite_exercice: str = "",
    nom: str,
    prenom: str,
    activities: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    return {
        "codeProfession": profession,
        "codeCategorieProfessionnelle": categorie,
        "codeCiviliteDexercice": civilite_exercice,
        "nomDexercice": nom,
        "prenomDexercice": prenom,
        "codeTypeSavoirFaire": "S" if savoir_faire else "",
        "codeSavoirFaire": savoir_faire,
        "activities": [dict(a) for a in activities],
    }


def _account(
    *,
    uuid: str,
    rpps: str,
    civilite: str,
    given_name: str,
    family_name: str,
    organization: str,
    exercices: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    idnps = f"8{rpps}"  # IDNPS of an RPPS-registered professional: "8" + the 11-digit RPPS
    return {
        "sub": f"f:{uuid}:{idnps}",
        "SubjectNameID": idnps,
        "preferred_username": idnps,
        "given_name": given_name,
        "family_name": family_name,
        "SubjectOrganization": organization,
        "SubjectRefPro": {"codeCivilite": civilite, "exercices": [dict(e) for e in exercices]},
        "otherIds": [
            {"identifiant": idnps, "origine": "IDNPS", "qualite": 1},
            {"identifiant": rpps, "origine": "RPPS", "qualite": 1},
        ],
    }


def _default_accounts() -> dict[str, dict[str, Any]]:
    doctor_site = _activity(
        structure_id="R10100000218896",
        raison_sociale="CABINET DU DR MEDECIN-TEST",
        secteur="SA07",
    )
    nurse_site = _activity(
        structure_id="R10100000367917",
        raison_sociale="CABINET INFIRMIER DES LILAS",
        secteur="SA07",
    )
    pharmacy = _activity(
        structure_id="R10100000431246",
        raison_sociale="PHARMACIE DE LA GARE",
        secteur="SA33",
    )
    other_site = _activity(
        structure_id="R10100000555504",
        raison_sociale="STRUCTURE DE TEST",
        secteur="SA99",
    )
    return {
        # Médecin généraliste (profession 10, savoir-faire SM54 = médecine générale).
        "doctor": _account(
            uuid="0b5cbb86-6a2d-4a1c-9a35-2c0d8e0f1a01",
            rpps="99700218896",
            civilite="M",
            given_name="Paul",
            family_name="MEDECIN-TEST",
            organization="CABINET DU DR MEDECIN-TEST",
            exercices=[
                _exercice(
                    profession="10",
                    savoir_faire="SM54",
                    civilite_exercice="DR",
                    nom="MEDECIN-TEST",
                    prenom="Paul",
                    activities=[doctor_site],
                )
            ],
        ),
        # Infirmière (profession 60).
        "nurse": _account(
            uuid="5d1f0f7e-3f0b-4f43-8d0a-6c2b7a9e2b02",
            rpps="99700367917",
            civilite="MME",
            given_name="Claire",
            family_name="INFIRMIERE-TEST",
            organization="CABINET INFIRMIER DES LILAS",
            exercices=[
                _exercice(
                    profession="60",
                    nom="INFIRMIERE-TEST",
                    prenom="Claire",
                    activities=[nurse_site],
                )
            ],
        ),
        # Pharmacienne (profession 21).
        "pharmacist": _account(
            uuid="9a7e4c2d-1b3f-4e5a-8c6d-7f8091a2b303",
            rpps="99700431246",
            civilite="MME",
            given_name="Lucie",
            family_name="PHARMACIENNE-TEST",
            organization="PHARMACIE DE LA GARE",
            exercices=[
                _exercice(
                    profession="21",
                    categorie="C",
                    nom="PHARMACIENNE-TEST",
                    prenom="Lucie",
                    activities=[pharmacy],
                )
            ],
        ),
        # A profession outside any allowed list (99).
        "other": _account(
            uuid="c4d5e6f7-0a1b-4c2d-9e3f-4a5b6c7d8e04",
            rpps="99700555504",
            civilite="M",
            given_name="Marc",
            family_name="AUTRE-TEST",
            organization="STRUCTURE DE TEST",
            exercices=[
                _exercice(
                    profession="99",
                    nom="AUTRE-TEST",
                    prenom="Marc",
                    activities=[other_site],
                )
            ],
        ),
        # Two exercices: an unknown profession first, then médecin (10).
        "multi": _account(
            uuid="e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a05",
            rpps="99700666605",
            civilite="MME",
            given_name="Anne",
            family_name="DOUBLE-TEST",
            organization="STRUCTURE DE TEST",
            exercices=[
                _exercice(
                    profession="99",
                    nom="DOUBLE-TEST",
                    prenom="Anne",
                    activities=[other_site],
                ),
                _exercice(
                    profession="10",
                    savoir_faire="SM54",
                    civilite_exercice="DR",
                    nom="DOUBLE-TEST",
                    prenom="Anne",
                    activities=[doctor_site],
                ),
            ],
        ),
    }


#: The provider's accounts by key: doctor (10), nurse (60), pharmacist (21), other (99),
#: multi (99 then 10). The first one, "doctor", is logged in when nothing else is chosen.
DEFAULT_ACCOUNTS: Final[Mapping[str, Mapping[str, Any]]] = _default_accounts()


# --------------------------------------------------------------------------------------------
# Installing and starting


def _unavailable(message: str) -> OIDCProviderUnavailableError:
    """Fail when services are required, else skip the calling test."""
    if os.environ.get(REQUIRE_ENV) == "1":
        return OIDCProviderUnavailableError(message)
    pytest.skip(message)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise _unavailable(
            f"{name} not found on PATH: the OpenID provider tests need Node.js and npm"
        )
    return path


def _check_node(node: str) -> None:
    out = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout.strip()
    try:
        major = int(out.lstrip("v").split(".")[0])
    except ValueError:
        raise _unavailable(f"cannot read the Node.js version ({out!r})") from None
    if major < _MIN_NODE_MAJOR:
        raise _unavailable(f"Node.js {out} is too old: oidc-provider needs >= {_MIN_NODE_MAJOR}")


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        path = PROVIDER_DIR / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()


def ensure_node_modules(*, timeout: float = 600.0) -> None:
    """Install the provider's npm packages once (``npm ci``, or ``npm install`` without a lock).

    Re-installs when package.json or package-lock.json changed since the last install.
    Serialised across processes with a file lock.
    """
    npm = _tool("npm")
    _check_node(_tool("node"))
    stamp = PROVIDER_DIR / "node_modules" / _STAMP_NAME
    wanted = _install_fingerprint()
    lock_name = f"hdsapp-oidc-provider-{hashlib.sha256(bytes(PROVIDER_DIR)).hexdigest()[:16]}.lock"
    with (Path(tempfile.gettempdir()) / lock_name).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text().strip() == wanted:
            return
        verb = "ci" if (PROVIDER_DIR / "package-lock.json").exists() else "install"
        try:
            done = subprocess.run(
                [npm, verb, "--no-audit", "--no-fund"],
                cwd=PROVIDER_DIR,
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise _unavailable(f"npm {verb} in {PROVIDER_DIR} took more than {timeout}s") from None
        if done.returncode != 0:
            raise _unavailable(
                f"npm {verb} in {PROVIDER_DIR} failed ({done.returncode}):\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        stamp.write_text(wanted + "\n")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_RUNNING: set[RunningProvider] = set()


@atexit.register
def _stop_all() -> None:
    for provider in list(_RUNNING):
        provider.stop()


@dataclass(eq=False)
class RunningProvider:
    """A started provider. Use as a context manager, or call :meth:`stop`."""

    issuer: str
    port: int
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    accounts: Mapping[str, PscAccount]
    clients: tuple[Mapping[str, Any], ...] = field(repr=False)
    _process: subprocess.Popen[bytes] = field(repr=False)
    _log: IO[bytes] = field(repr=False)
    #: An httpx client for talking to the provider (ignores proxy settings of the environment).
    http: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=10.0, trust_env=False), repr=False
    )
    _metadata: dict[str, Any] | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the issuer without its path, where ``/__control`` is)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        """PSC's discovery address: ``{issuer}/.well-known/wallet-openid-configuration``."""
        return f"{self.issuer}/.well-known/wallet-openid-configuration"

    @property
    def openid_configuration_url(self) -> str:
        """The standard address: ``{issuer}/.well-known/openid-configuration``."""
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/__control"

    def metadata(self, *, refresh: bool = False) -> dict[str, Any]:
        """The discovery document, fetched once from the PSC path."""
        if self._metadata is None or refresh:
            self._metadata = self._get_json(self.discovery_url)
        return self._metadata

    def jwks(self) -> dict[str, Any]:
        """The provider's public JWKS (one RSA RS256 key, one EC P-256 ES256 key)."""
        return self._get_json(str(self.metadata()["jwks_uri"]))

    def account(self, key: str) -> PscAccount:
        return self.accounts[key]

    # -- control -----------------------------------------------------------------------------

    def control(self, mode: TamperMode | str, *, persistent: bool = False) -> dict[str, Any]:
        """Tamper with the ``id_token`` of the next token response (every one if ``persistent``)
        or, for ``userinfo_wrong_sub``, with the next userinfo response.

        ``mode`` is a key of :data:`TAMPER_MODES`; ``"reset"`` clears it (and the selected
        account). Returns the control state (see :meth:`control_state`).
        """
        if mode not in TAMPER_MODES:
            raise ValueError(
                f"unknown tamper mode {mode!r}; expected one of {sorted(TAMPER_MODES)}"
            )
        return self._post_control({"mode": mode, "persistent": persistent})

    def reset(self) -> dict[str, Any]:
        """No tampering, default account again; forgets the applied modes."""
        return self._post_control({"mode": "reset"})

    def select_account(self, account: str | None) -> dict[str, Any]:
        """The account logged in when the authorization request has no ``login_hint``.

        ``account`` is a key of :attr:`accounts` (or a sub / SubjectNameID); None goes back
        to the first account. Stays until changed or reset.
        """
        return self._post_control({"account": account})

    def control_state(self) -> dict[str, Any]:
        """``mode``, ``persistent``, ``account``, ``applied`` (modes applied so far),
        ``token_responses`` (id_token responses seen), ``rsa_kid``, ``ec_kid``, ``unknown_kid``,
        ``rsa_public_pem``."""
        return self._get_json(self.control_url)

    # -- the user agent ----------------------------------------------------------------------

    def authorize(
        self,
        authorization_url: str,
        *,
        account: str | None = None,
        max_steps: int = 10,
    ) -> str:
        """Play the browser: follow the provider's redirects for an authorization request.

        Returns the URL the provider finally redirects to outside itself, i.e. the client's
        ``redirect_uri`` with ``code``, ``state`` and ``iss`` (or ``error``) in its query.
        ``account`` adds ``login_hint=<account>`` when the URL has no ``login_hint``. Uses a
        fresh cookie jar. Raises :class:`AuthorizationError` when the provider answers with a
        page (e.g. an invalid ``redirect_uri`` or client) instead of a redirect.
        """
        url = authorization_url
        if account is not None:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
            if not any(name == "login_hint" for name, _ in query):
                query.append(("login_hint", account))
                url = urlunsplit(parts._replace(query=urlencode(query)))
        return self._browse(url, max_steps=max_steps)

    def end_session(self, end_session_url: str, *, max_steps: int = 10) -> str:
        """Play the browser for RP-initiated logout (``end_session_endpoint?...``).

        Submits the provider's (self-submitting) logout form and returns where the provider
        sends the user: the ``post_logout_redirect_uri`` (with ``state``) if the request had a
        registered one, else the provider's own logout success page URL.
        """
        return self._browse(end_session_url, max_steps=max_steps)

    def _browse(self, url: str, *, max_steps: int) -> str:
        method, data = "GET", None
        response: httpx.Response | None = None
        with httpx.Client(follow_redirects=False, timeout=10.0, trust_env=False) as client:
            for _ in range(max_steps):
                if not self._is_provider_url(url):
                    if method != "GET":
                        raise AuthorizationError(
                            f"the provider posts a form to {url} (response_mode=form_post?): "
                            f"{data}",
                            response,
                        )
                    return url
                response = client.request(method, url, data=data)
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    method, data = "GET", None
                    continue
                form = _AutoForm.parse(response) if response.status_code == 200 else None
                if form is not None:
                    url = urljoin(url, form.action)
                    method, data = "POST", form.fields
                    continue
                if response.status_code == 200:
                    return url  # a page of the provider's own, e.g. "signed out"
                raise AuthorizationError(
                    f"provider answered {response.status_code} at {url}: {response.text[:2000]}",
                    response,
                )
        raise AuthorizationError(f"more than {max_steps} steps", response)

    def _is_provider_url(self, url: str) -> bool:
        parts = urlsplit(url)
        bare = urlunsplit(parts._replace(query="", fragment=""))
        if any(bare == uri for client in self.clients for uri in client["redirect_uris"]):
            return False
        return f"{parts.scheme}://{parts.netloc}" == self.base_url

    # -- process -----------------------------------------------------------------------------

    def log(self) -> str:
        """What node wrote so far (stdout and stderr)."""
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        """Stop node (its whole process group). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _RUNNING.discard(self)
        _terminate(self._process)
        self.http.close()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> RunningProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------

    def _get_json(self, url: str) -> dict[str, Any]:
        response = self.http.get(url)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def _post_control(self, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.http.post(self.control_url, json=dict(body))
        if response.status_code != 200:
            raise ValueError(f"control {dict(body)} refused: {response.text}")
        data: dict[str, Any] = response.json()
        return data


class _AutoForm(HTMLParser):
    """The first ``<form method="post">`` of a page and its hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done and attributes.get("method", "").lower() == "post":
            self.action = attributes.get("action", "")
            self._in_form = True
        elif tag == "input" and self._in_form and "name" in attributes:
            self.fields[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form = False
            self._done = True

    @classmethod
    def parse(cls, response: httpx.Response) -> _AutoForm | None:
        if not response.headers.get("content-type", "").startswith("text/html"):
            return None
        parser = cls()
        parser.feed(response.text)
        parser.close()
        return parser if parser.action is not None else None


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    else:
        # node exits on SIGTERM; anything it forked would share its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()


def start_oidc_provider(
    *,
    client_id: str,
    client_secret: str,
    redirect_uris: Sequence[str],
    post_logout_redirect_uris: Sequence[str] = (),
    token_endpoint_auth_method: str = "client_secret_basic",
    id_token_signed_response_alg: str = "RS256",
    extra_clients: Sequence[Mapping[str, Any]] = (),
    accounts: Mapping[str, Mapping[str, Any]] | None = None,
    issuer_path: str = "",
    startup_timeout: float = 30.0,
) -> RunningProvider:
    """Install if needed, start the provider on a free loopback port, wait for discovery.

    The client ``client_id``/``client_secret``/``redirect_uris`` is registered: authorization
    code grant, PKCE required, ``token_endpoint_auth_method`` ``client_secret_basic`` (default)
    or ``client_secret_post``, ID tokens signed ``id_token_signed_response_alg`` (RS256 by
    default), ``post_logout_redirect_uris`` for RP-initiated logout. ``extra_clients`` are more
    client metadata documents, as oidc-provider takes them. ``accounts`` replaces
    :data:`DEFAULT_ACCOUNTS` (key -> userinfo claims, each with a ``sub``). ``issuer_path``
    (e.g. ``"/auth/realms/esante-wallet"``, like PSC's) puts the issuer, hence every endpoint,
    under that path.

    Skips the test (fails with ``HDS_TEST_REQUIRE_SERVICES=1``) when node/npm are missing.
    """
    ensure_node_modules()
    node = _tool("node")
    if issuer_path and (not issuer_path.startswith("/") or issuer_path.endswith("/")):
        raise ValueError("issuer_path must start with '/' and not end with '/'")
    chosen = copy.deepcopy(dict(DEFAULT_ACCOUNTS if accounts is None else accounts))
    if not chosen:
        raise ValueError("at least one account is needed")
    main_client: dict[str, Any] = {
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": token_endpoint_auth_method,
        "id_token_signed_response_alg": id_token_signed_response_alg,
    }
    clients = (main_client, *(dict(c) for c in extra_clients))

    last_error: OIDCProviderStartError | None = None
    for _attempt in range(3):  # the free port can be taken between our probe and node's bind
        port = _free_port()
        try:
            return _launch(
                node=node,
                port=port,
                issuer_path=issuer_path,
                clients=clients,
                accounts=chosen,
                startup_timeout=startup_timeout,
            )
        except OIDCProviderStartError as error:
            last_error = error
            if "EADDRINUSE" not in str(error):
                raise
    assert last_error is not None
    raise last_error


def _launch(
    *,
    node: str,
    port: int,
    issuer_path: str,
    clients: tuple[Mapping[str, Any], ...],
    accounts: Mapping[str, Mapping[str, Any]],
    startup_timeout: float,
) -> RunningProvider:
    issuer = f"http://127.0.0.1:{port}{issuer_path}"
    config = {
        "host": "127.0.0.1",
        "port": port,
        "issuer_path": issuer_path,
        "clients": [dict(c) for c in clients],
        "accounts": {k: dict(v) for k, v in accounts.items()},
    }
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"NODE_ENV", "NODE_OPTIONS", "DEBUG"}
    }
    env[CONFIG_ENV] = json.dumps(config)
    env["NODE_ENV"] = "test"
    # oidc-provider's own error log (with error_detail, e.g. why a token request failed).
    env["DEBUG"] = "oidc-provider:error,oidc-provider:server_error*"
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by RunningProvider.stop
        prefix="hdsapp-oidc-provider-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        [node, "server.mjs"],
        cwd=PROVIDER_DIR,
        env=env,
        stdin=subprocess.PIPE,  # node exits when this closes, even if we die without cleanup
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    provider = RunningProvider(
        issuer=issuer,
        port=port,
        client_id=str(clients[0]["client_id"]),
        client_secret=str(clients[0]["client_secret"]),
        redirect_uris=tuple(clients[0]["redirect_uris"]),
        accounts={key: PscAccount(key=key, claims=claims) for key, claims in accounts.items()},
        clients=clients,
        _process=process,
        _log=log,
    )
    _RUNNING.add(provider)
    try:
        _wait_ready(provider, startup_timeout)
    except BaseException:
        provider.stop()
        raise
    return provider


def _wait_ready(provider: RunningProvider, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = provider.openid_configuration_url
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            code = provider._process.poll()
            if code is not None:
                raise OIDCProviderStartError(
                    f"the OpenID provider (node server.mjs) exited with {code} before answering "
                    f"{url}:\n{provider.log()}"
                )
            with contextlib.suppress(httpx.TransportError):
                response = client.get(url)
                if response.status_code == 200 and response.json().get("issuer") == provider.issuer:
                    return
            if time.monotonic() > deadline:
                raise OIDCProviderStartError(
                    f"the OpenID provider did not answer {url} within {timeout}s:\n{provider.log()}"
                )
            time.sleep(0.05)
