"""The Pro Santé Connect-shaped OpenID provider harness works, driven by a plain HTTP client.

These tests use httpx and joserfc only (not hdsapp's login): they prove that the harness is a
real OpenID provider (real codes, PKCE, single-use codes, signed ID tokens, userinfo) shaped like
PSC, and that each tamper mode produces exactly the token it claims, so the relying-party tests
can trust them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from tests.support import oidc
from tests.support.oidc import RunningProvider, start_oidc_provider

CLIENT_ID = "hdsapp-test"
CLIENT_SECRET = "test-secret-" + "x" * 32
REDIRECT_URI = "http://127.0.0.1:9/auth/callback"  # never contacted: authorize() stops there
POST_CLIENT_ID = "hdsapp-post"
POST_CLIENT_SECRET = "post-secret-" + "y" * 32
POST_REDIRECT_URI = "http://127.0.0.1:9/post/callback"
POST_LOGOUT_URI = "http://127.0.0.1:9/signed-out"
PSC_REALM = "/auth/realms/esante-wallet"


@pytest.fixture(scope="module")
def op() -> Iterator[RunningProvider]:
    with start_oidc_provider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[REDIRECT_URI],
        post_logout_redirect_uris=[POST_LOGOUT_URI],
        extra_clients=[
            {
                "client_id": POST_CLIENT_ID,
                "client_secret": POST_CLIENT_SECRET,
                "redirect_uris": [POST_REDIRECT_URI],
                "token_endpoint_auth_method": "client_secret_post",
            }
        ],
    ) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> None:
    if "op" in request.fixturenames:
        request.getfixturevalue("op").reset()


# ----------------------------------------------------------------------------------------------
# A minimal relying party, by hand


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Login:
    """One authorization request of the hand-made relying party."""

    state: str
    nonce: str
    verifier: str
    url: str
    client_id: str
    redirect_uri: str

    @property
    def challenge(self) -> str:
        return b64url(hashlib.sha256(self.verifier.encode()).digest())


def begin(
    op: RunningProvider,
    *,
    login_hint: str | None = None,
    client_id: str = CLIENT_ID,
    redirect_uri: str = REDIRECT_URI,
    pkce: bool = True,
) -> Login:
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)  # 64 characters; PKCE wants 43 to 128
    login = Login(state, nonce, verifier, "", client_id, redirect_uri)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid scope_all",
        "acr_values": "eidas1",
        "state": state,
        "nonce": nonce,
    }
    if pkce:
        params |= {"code_challenge": login.challenge, "code_challenge_method": "S256"}
    if login_hint is not None:
        params["login_hint"] = login_hint
    login.url = f"{op.metadata()['authorization_endpoint']}?{urlencode(params)}"
    return login


def callback_params(op: RunningProvider, login: Login, callback: str) -> dict[str, str]:
    parts = urlsplit(callback)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == login.redirect_uri
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert params["state"] == login.state
    assert params["iss"] == op.issuer  # RFC 9207
    return params


def authorize_code(op: RunningProvider, login: Login, account: str | None = None) -> str:
    params = callback_params(op, login, op.authorize(login.url, account=account))
    assert "error" not in params, params
    return params["code"]


def token_request(
    op: RunningProvider,
    login: Login,
    code: str,
    *,
    verifier: str | None = None,
    basic: tuple[str, str] | None = (CLIENT_ID, CLIENT_SECRET),
    form_auth: dict[str, str] | None = None,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": login.redirect_uri,
        "code_verifier": login.verifier if verifier is None else verifier,
    }
    data |= form_auth or {}
    return op.http.post(
        op.metadata()["token_endpoint"],
        data=data,
        auth=httpx.BasicAuth(*basic) if basic is not None else httpx.USE_CLIENT_DEFAULT,
    )


def full_login(op: RunningProvider, account: str | None = None) -> tuple[Login, dict[str, Any]]:
    login = begin(op, login_hint=account)
    code = authorize_code(op, login)
    response = token_request(op, login, code)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return login, tokens


def jwks(op: RunningProvider) -> KeySet:
    return KeySet.import_key_set(op.jwks())  # type: ignore[arg-type]


def verified_id_token(
    op: RunningProvider, id_token: str, *, algorithms: tuple[str, ...] = ("RS256",)
) -> jwt.Token:
    return jwt.decode(id_token, jwks(op), algorithms=list(algorithms))


def unverified(id_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = id_token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def check_claims(op: RunningProvider, claims: dict[str, Any], login: Login) -> None:
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": op.issuer},
        aud={"essential": True, "value": login.client_id},
        nonce={"essential": True, "value": login.nonce},
        acr={"essential": True, "value": "eidas1"},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(claims)


def userinfo(op: RunningProvider, access_token: str) -> httpx.Response:
    return op.http.get(
        op.metadata()["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {access_token}"},
    )


# ----------------------------------------------------------------------------------------------
# Discovery and keys


def test_discovery_at_the_psc_path_and_the_standard_path(op: RunningProvider) -> None:
    psc = op.http.get(op.discovery_url)
    standard = op.http.get(op.openid_configuration_url)
    assert psc.status_code == standard.status_code == 200
    assert psc.headers["content-type"].startswith("application/json")
    assert psc.json() == standard.json()
    meta = psc.json()
    assert op.discovery_url == f"{op.issuer}/.well-known/wallet-openid-configuration"
    assert meta["issuer"] == op.issuer == f"http://127.0.0.1:{op.port}"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["acr_values_supported"] == ["eidas1"]
    assert {"openid", "scope_all"} <= set(meta["scopes_supported"])
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert {"RS256", "ES256"} <= set(meta["id_token_signing_alg_values_supported"])
    assert {"SubjectNameID", "SubjectRefPro", "otherIds"} <= set(meta["claims_supported"])
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert meta[endpoint].startswith(op.issuer + "/")


def test_jwks_publishes_rsa_and_ec_public_keys_only(op: RunningProvider) -> None:
    keys = op.jwks()["keys"]
    assert {(k["kty"], k["alg"]) for k in keys} == {("RSA", "RS256"), ("EC", "ES256")}
    for key in keys:
        assert key["use"] == "sig"
        assert key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    state = op.control_state()
    assert {k["kid"] for k in keys} == {state["rsa_kid"], state["ec_kid"]}
    assert state["unknown_kid"] not in {k["kid"] for k in keys}


# ----------------------------------------------------------------------------------------------
# The code flow


def test_full_code_flow_with_pkce_client_secret_basic(op: RunningProvider) -> None:
    doctor = op.accounts["doctor"]
    login = begin(op, login_hint="doctor")
    code = authorize_code(op, login)

    response = token_request(op, login, code)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"].lower() == "bearer"
    assert {"access_token", "id_token", "expires_in"} <= set(tokens)

    token = verified_id_token(op, tokens["id_token"])
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == op.control_state()["rsa_kid"]
    check_claims(op, token.claims, login)
    assert token.claims["sub"] == doctor.sub
    assert token.claims["acr"] == "eidas1"
    assert abs(token.claims["iat"] - time.time()) < 60

    info = userinfo(op, tokens["access_token"])
    assert info.status_code == 200, info.text
    assert info.headers["content-type"].startswith("application/json")  # JSON, not a JWT
    claims = info.json()
    assert claims == dict(doctor.claims)
    assert claims["sub"] == token.claims["sub"]
    assert claims["SubjectNameID"] == "899700218896"
    assert claims["preferred_username"] == "899700218896"
    assert claims["SubjectRefPro"]["codeCivilite"] == "M"
    [exercice] = claims["SubjectRefPro"]["exercices"]
    assert exercice["codeProfession"] == "10"
    assert exercice["codeCategorieProfessionnelle"] == "C"
    assert exercice["codeSavoirFaire"] == "SM54"
    assert exercice["activities"]
    assert {"identifiant": "899700218896", "origine": "IDNPS", "qualite": 1} in claims["otherIds"]


@pytest.mark.parametrize(
    ("account", "professions"),
    [
        ("doctor", ("10",)),
        ("nurse", ("60",)),
        ("pharmacist", ("21",)),
        ("other", ("99",)),
        ("multi", ("99", "10")),
    ],
)
def test_each_account_logs_in_with_its_professions(
    op: RunningProvider, account: str, professions: tuple[str, ...]
) -> None:
    assert op.accounts[account].profession_codes == professions
    _login, tokens = full_login(op, account)
    claims = userinfo(op, tokens["access_token"]).json()
    assert claims["sub"] == op.accounts[account].sub
    assert tuple(e["codeProfession"] for e in claims["SubjectRefPro"]["exercices"]) == professions


def test_login_hint_may_be_the_subject_name_id(op: RunningProvider) -> None:
    nurse = op.accounts["nurse"]
    _login, tokens = full_login(op, nurse.subject_name_id)
    assert verified_id_token(op, tokens["id_token"]).claims["sub"] == nurse.sub


def test_no_single_sign_on_between_requests(op: RunningProvider) -> None:
    # Each request logs in the account it names, whatever came before.
    for account in ("doctor", "nurse", "doctor"):
        _login, tokens = full_login(op, account)
        assert verified_id_token(op, tokens["id_token"]).claims["sub"] == op.accounts[account].sub


def test_selected_account_is_used_without_login_hint(op: RunningProvider) -> None:
    _login, tokens = full_login(op)
    assert verified_id_token(op, tokens["id_token"]).claims["sub"] == op.accounts["doctor"].sub
    assert op.select_account("nurse")["account"] == "nurse"
    for _ in range(2):  # sticky
        _login, tokens = full_login(op)
        assert verified_id_token(op, tokens["id_token"]).claims["sub"] == op.accounts["nurse"].sub
    # login_hint still wins
    _login, tokens = full_login(op, "other")
    assert verified_id_token(op, tokens["id_token"]).claims["sub"] == op.accounts["other"].sub
    op.reset()
    _login, tokens = full_login(op)
    assert verified_id_token(op, tokens["id_token"]).claims["sub"] == op.accounts["doctor"].sub


def test_unknown_login_hint_is_access_denied(op: RunningProvider) -> None:
    login = begin(op, login_hint="nobody")
    params = callback_params(op, login, op.authorize(login.url))
    assert params["error"] == "access_denied"
    assert "code" not in params


def test_authorization_without_pkce_is_refused(op: RunningProvider) -> None:
    login = begin(op, login_hint="doctor", pkce=False)
    params = callback_params(op, login, op.authorize(login.url))
    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]


def test_unregistered_redirect_uri_is_not_followed(op: RunningProvider) -> None:
    login = begin(op, login_hint="doctor", redirect_uri="http://127.0.0.1:9/elsewhere")
    with pytest.raises(oidc.AuthorizationError) as caught:
        op.authorize(login.url)
    response = caught.value.response
    assert response is not None
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


def test_reused_code_is_invalid_grant(op: RunningProvider) -> None:
    login = begin(op, login_hint="doctor")
    code = authorize_code(op, login)
    first = token_request(op, login, code)
    assert first.status_code == 200, first.text
    second = token_request(op, login, code)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"


def test_wrong_pkce_verifier_is_invalid_grant(op: RunningProvider) -> None:
    login = begin(op, login_hint="doctor")
    code = authorize_code(op, login)
    wrong = token_request(op, login, code, verifier=secrets.token_urlsafe(40))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    missing = token_request(op, login, code, verifier="")
    assert missing.status_code == 400
    assert missing.json()["error"] in {"invalid_grant", "invalid_request"}
    # oidc-provider checks PKCE before consuming the code: the refusals above were PKCE's.
    right = token_request(op, login, code)
    assert right.status_code == 200, right.text


def test_failures_are_explained_in_the_provider_log(op: RunningProvider) -> None:
    login = begin(op, login_hint="doctor")
    code = authorize_code(op, login)
    assert token_request(op, login, code, verifier=secrets.token_urlsafe(40)).status_code == 400
    assert "code_verifier does not match code_challenge" in op.log()


def test_rp_initiated_logout_returns_to_the_client(op: RunningProvider) -> None:
    _login, tokens = full_login(op, "doctor")
    state = secrets.token_urlsafe(16)
    query = urlencode(
        {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": POST_LOGOUT_URI,
            "state": state,
        }
    )
    back = op.end_session(f"{op.metadata()['end_session_endpoint']}?{query}")
    assert back == f"{POST_LOGOUT_URI}?state={state}"


def test_logout_with_an_unregistered_post_logout_uri_is_refused(op: RunningProvider) -> None:
    _login, tokens = full_login(op, "doctor")
    query = urlencode(
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:9/x"}
    )
    with pytest.raises(oidc.AuthorizationError) as caught:
        op.end_session(f"{op.metadata()['end_session_endpoint']}?{query}")
    assert caught.value.response is not None
    assert caught.value.response.status_code == 400


def test_wrong_client_secret_is_invalid_client(op: RunningProvider) -> None:
    login = begin(op, login_hint="doctor")
    code = authorize_code(op, login)
    response = token_request(op, login, code, basic=(CLIENT_ID, "not-the-secret"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_client_secret_post_client(op: RunningProvider) -> None:
    login = begin(op, login_hint="nurse", client_id=POST_CLIENT_ID, redirect_uri=POST_REDIRECT_URI)
    code = authorize_code(op, login)
    response = token_request(
        op,
        login,
        code,
        basic=None,
        form_auth={"client_id": POST_CLIENT_ID, "client_secret": POST_CLIENT_SECRET},
    )
    assert response.status_code == 200, response.text
    token = verified_id_token(op, response.json()["id_token"])
    check_claims(op, token.claims, login)
    assert token.claims["sub"] == op.accounts["nurse"].sub


# ----------------------------------------------------------------------------------------------
# Tamper modes


def tampered_login(
    op: RunningProvider, mode: str
) -> tuple[Login, dict[str, Any], dict[str, Any], str]:
    state = op.control(mode)
    assert state["mode"] == mode
    login, tokens = full_login(op, "doctor")
    header, claims = unverified(tokens["id_token"])
    after = op.control_state()
    assert after["mode"] is None  # one-shot
    assert after["applied"] == [mode]
    return login, header, claims, tokens["id_token"]


def assert_genuine_except(
    op: RunningProvider, login: Login, claims: dict[str, Any], *changed: str
) -> None:
    """Everything but the named claims is what the provider issued for this login."""
    expected = {
        "iss": op.issuer,
        "aud": login.client_id,
        "nonce": login.nonce,
        "acr": "eidas1",
        "sub": op.accounts["doctor"].sub,
    }
    for name, value in expected.items():
        if name not in changed:
            assert claims[name] == value, name
    if "exp" not in changed:
        assert claims["exp"] > time.time() + 60
    if "iat" not in changed:
        assert abs(claims["iat"] - time.time()) < 60


def test_tamper_modes_are_documented_and_known_to_the_server(op: RunningProvider) -> None:
    assert set(op.control_state()["modes"]) == set(oidc.TAMPER_MODES)
    with pytest.raises(ValueError, match="unknown tamper mode"):
        op.control("bogus")
    refused = op.http.post(op.control_url, json={"mode": "bogus"})
    assert refused.status_code == 400


def test_tamper_wrong_issuer(op: RunningProvider) -> None:
    login, _header, claims, token = tampered_login(op, "wrong_issuer")
    assert verified_id_token(op, token).claims == claims  # real key, valid signature
    assert claims["iss"] == "https://attacker.invalid/auth/realms/esante-wallet"
    assert_genuine_except(op, login, claims, "iss")


def test_tamper_wrong_audience(op: RunningProvider) -> None:
    login, _header, claims, token = tampered_login(op, "wrong_audience")
    assert verified_id_token(op, token).claims == claims
    assert claims["aud"] == "another-relying-party"
    assert_genuine_except(op, login, claims, "aud")


def test_tamper_expired(op: RunningProvider) -> None:
    login, _header, claims, token = tampered_login(op, "expired")
    assert verified_id_token(op, token).claims == claims
    assert claims["exp"] < time.time() - 3000
    assert claims["iat"] < claims["exp"]
    assert_genuine_except(op, login, claims, "exp", "iat")
    with pytest.raises(JoseError):
        check_claims(op, claims, login)


def test_tamper_issued_in_future(op: RunningProvider) -> None:
    login, _header, claims, token = tampered_login(op, "issued_in_future")
    assert verified_id_token(op, token).claims == claims
    assert claims["iat"] > time.time() + 3000
    assert claims["exp"] > claims["iat"]
    assert_genuine_except(op, login, claims, "iat", "exp")
    with pytest.raises(JoseError):
        check_claims(op, claims, login)


def test_tamper_alg_none(op: RunningProvider) -> None:
    login, header, claims, token = tampered_login(op, "alg_none")
    assert header["alg"] == "none"
    assert "kid" not in header
    assert token.endswith(".")  # empty signature
    assert_genuine_except(op, login, claims)
    with pytest.raises(JoseError):
        verified_id_token(op, token)


def test_tamper_hs256_with_public_key(op: RunningProvider) -> None:
    login, header, claims, token = tampered_login(op, "hs256_with_public_key")
    state = op.control_state()
    assert header["alg"] == "HS256"
    assert header["kid"] == state["rsa_kid"]
    # The PEM an attacker derives from the published JWKS is the HMAC secret.
    [rsa_jwk] = [k for k in op.jwks()["keys"] if k["kty"] == "RSA"]
    pem = RSAKey.import_key(rsa_jwk).as_pem(private=False)
    assert pem.decode() == state["rsa_public_pem"]
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(signature), expected)
    assert_genuine_except(op, login, claims)
    with pytest.raises(JoseError):
        verified_id_token(op, token)


def test_tamper_unknown_kid(op: RunningProvider) -> None:
    login, header, claims, token = tampered_login(op, "unknown_kid")
    published = {k["kid"] for k in op.jwks()["keys"]}
    assert header["alg"] == "RS256"
    assert header["kid"] == op.control_state()["unknown_kid"]
    assert header["kid"] not in published
    assert_genuine_except(op, login, claims)
    with pytest.raises(JoseError):
        verified_id_token(op, token)
    # Not merely an unknown kid: no published key verifies it either.
    [rsa_jwk] = [k for k in op.jwks()["keys"] if k["kty"] == "RSA"]
    with pytest.raises(JoseError):
        jwt.decode(token, RSAKey.import_key(rsa_jwk), algorithms=["RS256"])


def test_tamper_nonce_mismatch(op: RunningProvider) -> None:
    login, _header, claims, token = tampered_login(op, "nonce_mismatch")
    assert verified_id_token(op, token).claims == claims
    assert claims["nonce"] != login.nonce
    assert claims["nonce"].startswith("tampered-")
    assert_genuine_except(op, login, claims, "nonce")


def test_tamper_missing_acr(op: RunningProvider) -> None:
    login, _header, claims, token = tampered_login(op, "missing_acr")
    assert verified_id_token(op, token).claims == claims
    assert "acr" not in claims
    assert_genuine_except(op, login, claims, "acr")


def test_tamper_wrong_acr(op: RunningProvider) -> None:
    login, _header, claims, token = tampered_login(op, "wrong_acr")
    assert verified_id_token(op, token).claims == claims
    assert claims["acr"] == "eidas0"
    assert_genuine_except(op, login, claims, "acr")


def test_tamper_es256_published_key(op: RunningProvider) -> None:
    login, header, claims, token = tampered_login(op, "es256_published_key")
    assert header["alg"] == "ES256"
    assert header["kid"] == op.control_state()["ec_kid"]
    assert verified_id_token(op, token, algorithms=("ES256",)).claims == claims
    with pytest.raises(JoseError):
        verified_id_token(op, token, algorithms=("RS256",))
    assert_genuine_except(op, login, claims)


def test_tamper_userinfo_wrong_sub(op: RunningProvider) -> None:
    op.control("userinfo_wrong_sub")
    login, tokens = full_login(op, "doctor")
    token = verified_id_token(op, tokens["id_token"])
    check_claims(op, token.claims, login)  # the ID token is genuine
    assert token.claims["sub"] == op.accounts["doctor"].sub
    claims = userinfo(op, tokens["access_token"]).json()
    assert claims["sub"] != token.claims["sub"]
    assert claims["sub"] in {account.sub for account in op.accounts.values()}
    assert {k: v for k, v in claims.items() if k != "sub"} == {
        k: v for k, v in op.accounts["doctor"].claims.items() if k != "sub"
    }
    assert op.control_state()["applied"] == ["userinfo_wrong_sub"]
    assert userinfo(op, tokens["access_token"]).json()["sub"] == token.claims["sub"]  # one-shot


def test_tamper_is_one_shot_unless_persistent(op: RunningProvider) -> None:
    op.control("wrong_acr")
    _login, tokens = full_login(op)
    assert unverified(tokens["id_token"])[1]["acr"] == "eidas0"
    _login, tokens = full_login(op)
    assert unverified(tokens["id_token"])[1]["acr"] == "eidas1"

    op.control("wrong_acr", persistent=True)
    for _ in range(2):
        _login, tokens = full_login(op)
        assert unverified(tokens["id_token"])[1]["acr"] == "eidas0"
    assert op.control_state()["applied"] == ["wrong_acr"] * 3
    op.reset()
    _login, tokens = full_login(op)
    assert unverified(tokens["id_token"])[1]["acr"] == "eidas1"
    assert op.control_state()["applied"] == []


def test_failed_token_request_does_not_consume_the_tamper_mode(op: RunningProvider) -> None:
    op.control("missing_acr")
    login = begin(op, login_hint="doctor")
    code = authorize_code(op, login)
    assert token_request(op, login, code, verifier=secrets.token_urlsafe(40)).status_code == 400
    assert op.control_state()["mode"] == "missing_acr"
    _login, tokens = full_login(op)
    assert "acr" not in unverified(tokens["id_token"])[1]


# ----------------------------------------------------------------------------------------------
# Start-up variants and failures


def test_issuer_with_a_psc_like_path() -> None:
    with start_oidc_provider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[REDIRECT_URI],
        issuer_path=PSC_REALM,
    ) as op:
        assert op.issuer == f"http://127.0.0.1:{op.port}{PSC_REALM}"
        meta = op.http.get(op.discovery_url).json()
        assert meta["issuer"] == op.issuer
        assert meta["authorization_endpoint"].startswith(op.issuer + "/")
        # Dropping the path (a classic urljoin bug) finds nothing.
        wrong = op.http.get(f"{op.base_url}/.well-known/wallet-openid-configuration")
        assert wrong.status_code == 404
        login, tokens = full_login(op, "pharmacist")
        token = verified_id_token(op, tokens["id_token"])
        check_claims(op, token.claims, login)
        claims = userinfo(op, tokens["access_token"]).json()
        assert claims["SubjectRefPro"]["exercices"][0]["codeProfession"] == "21"


def test_stop_ends_the_node_process() -> None:
    op = start_oidc_provider(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI]
    )
    process = op._process
    assert process.poll() is None
    op.stop()
    assert process.poll() is not None
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.TransportError):
        client.get(op.openid_configuration_url, timeout=2.0)
    op.stop()  # idempotent


def test_start_failure_reports_node_output() -> None:
    with pytest.raises(oidc.OIDCProviderStartError, match="has no sub"):
        start_oidc_provider(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uris=[REDIRECT_URI],
            accounts={"broken": {"SubjectNameID": "899700000000"}},
        )


def test_missing_node_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.delenv(oidc.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found on PATH"):
        oidc.ensure_node_modules()
    monkeypatch.setenv(oidc.REQUIRE_ENV, "1")
    with pytest.raises(oidc.OIDCProviderUnavailableError, match="not found on PATH"):
        oidc.ensure_node_modules()
