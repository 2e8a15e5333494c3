from pathlib import Path

from fastapi.testclient import TestClient

from hdsapp import migrations
from hdsapp.app import create_app
from hdsapp.config import Settings
from tests.conftest import make_settings


def _ready(settings: Settings) -> tuple[int, dict[str, object]]:
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        response = client.get("/readyz")
    return response.status_code, response.json()


def _failed(body: dict[str, object]) -> set[str]:
    checks = body["checks"]
    assert isinstance(checks, list)
    return {c["name"] for c in checks if not c["ok"]}


def test_ready_on_the_embedded_broker(settings: Settings) -> None:
    status, body = _ready(settings)
    assert (status, body["ready"]) == (200, True)


def test_not_ready_when_the_database_is_down(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url="postgresql+psycopg://hds@127.0.0.1:1/nowhere")
    status, body = _ready(settings)
    assert status == 503
    assert _failed(body) == {"database", "schema"}


def test_not_ready_when_migrations_are_pending(tmp_path: Path, database_url: str) -> None:
    migrations.downgrade(database_url, "base")
    status, body = _ready(make_settings(tmp_path, database_url=database_url))
    assert status == 503
    assert _failed(body) == {"schema"}


def test_not_ready_when_the_broker_is_down(settings: Settings, tmp_path: Path) -> None:
    down = make_settings(
        tmp_path,
        database_url=settings.effective_database_url,
        broker_url="redis://127.0.0.1:1/0",
    )
    status, body = _ready(down)
    assert status == 503
    assert _failed(body) == {"broker"}
