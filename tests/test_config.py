from pathlib import Path

import pytest

from hdsapp.config import ConfigError, load_settings


def test_embedded_defaults() -> None:
    settings = load_settings({})
    assert settings.env == "development"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("var/hdsapp.sqlite3")
    assert settings.embedded_broker
    assert settings.effective_broker_url.startswith("sqla+sqlite:///")


def test_reads_hds_variables() -> None:
    settings = load_settings(
        {
            "HDS_PORT": "9001",
            "HDS_DATABASE_URL": "postgresql+psycopg://hds@db/hds",
            "HDS_BROKER_URL": "redis://redis:6379/0",
            "HDS_TRUSTED_HOSTS": "care.example.fr, api.care.example.fr",
        }
    )
    assert settings.port == 9001
    assert settings.effective_database_url == "postgresql+psycopg://hds@db/hds"
    assert not settings.embedded_broker
    assert settings.trusted_hosts == ["care.example.fr", "api.care.example.fr"]


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"HDS_PORT": "eighty"}, "HDS_PORT"),
        ({"HDS_PORT": "70000"}, "HDS_PORT"),
        ({"HDS_DEBUG": "perhaps"}, "HDS_DEBUG"),
        ({"HDS_DATABASE_URL": "mysql://x"}, "HDS_DATABASE_URL"),
        ({"HDS_LOG_LEVEL": "LOUD"}, "HDS_LOG_LEVEL"),
        ({"HDS_DATABSE_URL": "sqlite://"}, "HDS_DATABSE_URL"),
    ],
)
def test_bad_configuration_names_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert any(problem.startswith(named + ":") for problem in caught.value.problems)


def test_test_variables_are_not_settings() -> None:
    load_settings({"HDS_TEST_DATABASE_URL": "postgresql://x"})


def test_production_refuses_unsafe_defaults(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HDS_ENV": "production", "HDS_DEBUG": "1", "HDS_DATA_DIR": str(tmp_path)})
    problems = " ".join(caught.value.problems)
    assert "HDS_DEBUG" in problems
    assert "HDS_PUBLIC_URL" in problems
    assert "HDS_TRUSTED_HOSTS" in problems
    assert "hdsapp init" in problems


def test_production_accepts_a_complete_configuration(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "app.key").write_bytes(b"k" * 32)
    settings = load_settings(
        {
            "HDS_ENV": "production",
            "HDS_PUBLIC_URL": "https://care.example.fr",
            "HDS_TRUSTED_HOSTS": "care.example.fr",
            "HDS_DATA_DIR": str(tmp_path),
        }
    )
    assert settings.env == "production"
