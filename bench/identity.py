"""Login latency with the argon2id parameters in use, against the hash alone as a baseline.

    .venv/bin/python -m bench.identity [--rounds 20]

(As a module: run as a script, bench/ comes first on sys.path and bench/audit.py would shadow
the audit package.)

Measures, on a fresh SQLite database: one argon2id verification (the baseline), a successful
password + TOTP login, a refused login for an existing account and for an unknown one (these two
must cost the same: no user enumeration by timing), and a request authenticated by the session
cookie. Medians in milliseconds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import col

from hdsapp import migrations
from hdsapp.app import create_app
from hdsapp.config import Settings
from hdsapp.core.actor import system_actor
from hdsapp.core.db import Database, utcnow
from hdsapp.identity import credentials, service
from hdsapp.models.user import User

PASSWORD = "correct horse battery staple"


def median_ms(rounds: int, action: Callable[[], object]) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    workdir = Path(tempfile.mkdtemp(prefix="hdsapp-bench-"))
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    migrations.upgrade(url)
    settings = Settings.model_validate(
        {"data_dir": workdir, "database_url": url, "auth_requests_per_minute": 100_000}
    )
    database = Database(url)
    with database.unit_of_work() as session:
        created = service.create_user(
            session=session,
            actor=system_actor(),
            email="bench@example.org",
            display_name="Bench",
            password=PASSWORD,
            now=utcnow(),
        )
        user_id, secret, stored = created.user.id, created.totp_secret, created.user.password_hash
    assert secret is not None

    def fresh_code() -> str:
        with database.unit_of_work() as session:
            session.execute(update(User).where(col(User.id) == user_id).values(totp_last_step=None))
        return credentials.totp_code(secret, credentials.totp_step(utcnow()))

    results = {
        "argon2id verify (baseline)": median_ms(
            rounds, lambda: credentials.verify_password(stored, PASSWORD)
        )
    }
    with TestClient(create_app(settings, database), base_url="https://testserver") as client:

        def login(email: str, password: str, otp: str) -> None:
            client.post(
                "/api/v1/auth/login", json={"email": email, "password": password, "otp": otp}
            )

        ok = []
        for _ in range(rounds):
            code = fresh_code()
            started = time.perf_counter()
            response = client.post(
                "/api/v1/auth/login",
                json={"email": "bench@example.org", "password": PASSWORD, "otp": code},
            )
            ok.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        results["login, password + TOTP"] = round(statistics.median(ok) * 1000, 1)
        results["GET /api/v1/me with the cookie"] = median_ms(
            rounds, lambda: client.get("/api/v1/me")
        )
        # Four refusals per account name stay under the growing delay (it starts at five).
        refusals = min(rounds, 4)
        results["login refused, existing account"] = median_ms(
            refusals, lambda: login("bench@example.org", "wrong password!", "000000")
        )
        names = iter(f"ghost{i}@example.org" for i in range(refusals))
        results["login refused, unknown account"] = median_ms(
            refusals, lambda: login(next(names), "wrong password!", "000000")
        )
    database.dispose()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for name, value in results.items():
        print(f"{name:<36} {value:>8} ms")


if __name__ == "__main__":
    main()
