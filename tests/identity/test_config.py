"""Identity settings: HDS_OIDC_PROVIDERS inline or from a file, profiles, mTLS, production."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hdsapp.config import ConfigError, Settings, load_settings
from hdsapp.identity.oidc import OidcClient, resolve_provider

PSC = {
    "profile": "psc",
    "issuer": "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
    "client_id": "hdsapp",
    "client_secret": "s3cret",
}


def test_providers_inline_and_from_a_file(tmp_path: Path) -> None:
    inline = load_settings(
        {"HDS_DATA_DIR": str(tmp_path), "HDS_OIDC_PROVIDERS": json.dumps({"psc": PSC})}
    )
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"psc": PSC}))
    from_file = load_settings({"HDS_DATA_DIR": str(tmp_path), "HDS_OIDC_PROVIDERS": str(path)})
    assert inline.oidc_providers == from_file.oidc_providers
    assert load_settings({"HDS_DATA_DIR": str(tmp_path)}).oidc_providers == {}


def test_the_psc_profile_defaults(tmp_path: Path) -> None:
    settings = load_settings(
        {"HDS_DATA_DIR": str(tmp_path), "HDS_OIDC_PROVIDERS": json.dumps({"psc": PSC})}
    )
    config = resolve_provider("psc", settings.oidc_providers["psc"], public_url="https://h.example")
    assert config.discovery_url == PSC["issuer"] + "/.well-known/wallet-openid-configuration"
    assert config.scopes == ("openid", "scope_all")
    assert config.acr_values == ("eidas1",)
    assert config.algorithms == ("RS256",)
    assert config.redirect_uri == "https://h.example/api/v1/auth/oidc/psc/callback"
    assert config.allowed_professions is not None
    assert {"10", "21", "40", "50", "60", "70"} <= config.allowed_professions
    assert "99" not in config.allowed_professions


def test_client_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n")
    provider = {**PSC, "client_secret": "", "client_secret_file": str(secret)}
    settings = load_settings(
        {"HDS_DATA_DIR": str(tmp_path), "HDS_OIDC_PROVIDERS": json.dumps({"psc": provider})}
    )
    config = resolve_provider("psc", settings.oidc_providers["psc"], public_url="https://h")
    assert config.client_secret == "from-the-file"
    assert "from-the-file" not in repr(settings.oidc_providers["psc"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "not valid JSON"),
        ("/does/not/exist.json", "cannot read"),
        (json.dumps({"Bad Name": PSC}), "HDS_OIDC_PROVIDERS"),
        (json.dumps({"psc": {**PSC, "issuer": "https://x.example/"}}), "HDS_OIDC_PROVIDERS"),
        (json.dumps({"psc": {**PSC, "id_token_algorithms": ["HS256"]}}), "HS256"),
        (json.dumps({"psc": {**PSC, "id_token_algorithms": ["none"]}}), "none"),
        (json.dumps({"psc": {**PSC, "unknown": 1}}), "HDS_OIDC_PROVIDERS"),
        (json.dumps({"psc": {**PSC, "token_endpoint_auth_method": "tls_client_auth"}}), "tls"),
        (json.dumps({"psc": {**PSC, "tls_client_cert": "/x.pem"}}), "together"),
    ],
)
def test_bad_provider_settings_name_the_variable(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HDS_DATA_DIR": str(tmp_path), "HDS_OIDC_PROVIDERS": value})
    text = "; ".join(caught.value.problems)
    assert text.startswith("HDS_OIDC_PROVIDERS")
    assert message in text


def test_identity_settings_defaults_and_bounds(tmp_path: Path) -> None:
    settings = load_settings({"HDS_DATA_DIR": str(tmp_path)})
    assert settings.session_idle_minutes == 30
    assert settings.session_max_hours == 12
    assert settings.step_up_seconds == 300
    assert settings.auth_requests_per_minute == 60
    assert settings.auth_failures_per_hour == 100
    assert settings.effective_rate_limit_url == ""
    redis = load_settings({"HDS_DATA_DIR": str(tmp_path), "HDS_BROKER_URL": "redis://r:6379/0"})
    assert redis.effective_rate_limit_url == "redis://r:6379/0"
    with pytest.raises(ConfigError, match="HDS_RATE_LIMIT_URL"):
        load_settings({"HDS_DATA_DIR": str(tmp_path), "HDS_RATE_LIMIT_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="HDS_SESSION_IDLE_MINUTES"):
        load_settings({"HDS_DATA_DIR": str(tmp_path), "HDS_SESSION_IDLE_MINUTES": "0"})


def test_production_refuses_a_plain_http_issuer(tmp_path: Path) -> None:
    production = {
        "data_dir": tmp_path,
        "env": "production",
        "public_url": "https://care.example.org",
        "trusted_hosts": "care.example.org",
    }
    https = Settings.model_validate({**production, "oidc_providers": json.dumps({"psc": PSC})})
    assert not [p for p in https.production_problems() if "OIDC" in p]
    http = {**PSC, "issuer": "http://idp.example.org"}
    plain = Settings.model_validate({**production, "oidc_providers": json.dumps({"psc": http})})
    assert "HDS_OIDC_PROVIDERS: psc: the issuer must be https://" in plain.production_problems()
    memory = Settings.model_validate({**production, "rate_limit_url": "memory://"})
    assert any(p.startswith("HDS_RATE_LIMIT_URL") for p in memory.production_problems())


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hdsapp-client")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "client.crt", tmp_path / "client.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_a_client_certificate_is_given_to_the_http_client(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    provider = {
        **PSC,
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_cert": str(cert),
        "tls_client_key": str(key),
    }
    settings = load_settings(
        {"HDS_DATA_DIR": str(tmp_path), "HDS_OIDC_PROVIDERS": json.dumps({"psc": provider})}
    )
    client = OidcClient(
        resolve_provider("psc", settings.oidc_providers["psc"], public_url="https://h")
    )
    context = client._verify()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED  # the server is still verified
    with client._oauth() as oauth:
        assert oauth.token_endpoint_auth_method == "none"  # the certificate authenticates
    plain = OidcClient(
        resolve_provider(
            "p",
            settings.oidc_providers["psc"].model_copy(
                update={
                    "tls_client_cert": None,
                    "tls_client_key": None,
                    "token_endpoint_auth_method": "client_secret_basic",
                }
            ),
            public_url="https://h",
        )
    )
    assert plain._verify() is True
