"""No Docker engine runs here: check the deployment files against the code instead."""

from pathlib import Path
from typing import Any

import yaml

from hdsapp.config import ENV_PREFIX, Settings
from tests.conftest import REPO_ROOT

INFRA = REPO_ROOT / "infra"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((INFRA / "compose.yaml").read_text())
    return data


def _hds_variables(compose: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for service in compose["services"].values():
        names.update(k for k in service.get("environment", {}) if k.startswith(ENV_PREFIX))
    return names


def test_every_variable_is_a_real_setting() -> None:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    used = _hds_variables(_compose())
    assert used, "the compose file sets no HDS_ variable"
    assert used <= known, f"not settings: {sorted(used - known)}"


def test_services_of_one_image_run_each_role() -> None:
    services = _compose()["services"]
    assert {"api", "worker", "beat", "postgres", "redis", "proxy"} <= set(services)
    commands = {name: services[name]["command"][0] for name in ("api", "worker", "beat")}
    assert commands == {"api": "serve", "worker": "worker", "beat": "beat"}
    images = {services[name]["image"] for name in ("api", "worker", "beat", "migrate")}
    assert len(images) == 1


def test_production_mode_with_postgres_and_redis() -> None:
    env = _compose()["services"]["api"]["environment"]
    assert env["HDS_ENV"] == "production"
    assert env["HDS_PUBLIC_URL"].startswith("https://")
    assert env["HDS_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["HDS_BROKER_URL"].startswith("redis://")


def test_only_the_proxy_is_published() -> None:
    services = _compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2
    final = text.split(stages[-1], 1)[1]
    assert "USER 10001" in final
    assert "HEALTHCHECK" in final
    assert "build-essential" not in final
    assert 'ENTRYPOINT ["hdsapp"]' in final


def test_proxy_logs_drop_query_strings() -> None:
    caddyfile = (INFRA / "Caddyfile").read_text()
    assert "query" in caddyfile
    assert "delete" in caddyfile
    assert Path(INFRA / "compose.yaml").is_file()
