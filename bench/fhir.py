"""FHIR API latency against a bare FastAPI baseline, on PostgreSQL, in one run.

    .venv/bin/python -m bench.fhir \\
        --admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        [--rounds 300] [--audit-mode simple|sequencer]

(``--admin-url`` defaults to ``HDS_TEST_DATABASE_URL``, the test suite's.)

(As a module: run as a script, bench/ comes first on sys.path and this file would shadow the
``fhir`` package of fhir.resources.)

A fresh database is created from the admin URL, migrated, and dropped at the end. The same
in-process client (Starlette's TestClient, sequential requests) drives:

- the baseline: a bare FastAPI app on the same engine and database, with a table of
  (id, key, JSON text): read one row by id, select the 10 rows of a key, insert one row — one
  session and one transaction per request, the stored JSON returned as is;
- the FHIR base: ``GET /fhir/{gid}/Patient/{id}``, ``GET /fhir/{gid}/Patient?family=…&birthdate=…``
  (10 hits), ``POST /fhir/{gid}/Patient`` — authenticated with a personal access token,
  authorised by the policy, the identity sealed, blind-indexed and opened, one audit entry each;
- for reference, the same use cases through ``/api/v1/groups/{gid}/patients`` (what the FHIR
  layer itself adds is the difference).

Cases are interleaved round by round (so load from elsewhere spreads over all of them); each
reports its median latency, and the ratio baseline/FHIR (1.0 = as fast as the baseline; the
goals: read >= 0.6, search >= 0.5, create >= 0.35).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from hdsapp import migrations
from hdsapp.app import create_app
from hdsapp.config import Settings
from hdsapp.core import accesslog
from hdsapp.core.actor import Role, system_actor
from hdsapp.core.db import Database, utcnow
from hdsapp.groups import service as groups
from hdsapp.identity import repository as identity_repository
from hdsapp.identity import service as identity

GOALS = {"read": 0.6, "search (10 hits)": 0.5, "create": 0.35}
STATUS_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
STATUS_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status"
_serial = itertools.count()


def patient(family: str, birth_date: str) -> dict[str, Any]:
    n = next(_serial)
    return {
        "resourceType": "Patient",
        "extension": [
            {
                "url": STATUS_URL,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {"system": STATUS_SYSTEM, "code": "PROV"},
                    }
                ],
            }
        ],
        "name": [{"use": "official", "family": family, "given": [f"Given{n}", "Marie"]}],
        "gender": "female",
        "birthDate": birth_date,
        "telecom": [{"system": "phone", "value": f"+33 6 00 00 {n % 100:02d} {n % 97:02d}"}],
        "address": [{"line": [f"{n} rue de la Paix"], "city": "Lyon", "postalCode": "69001"}],
    }


def baseline_app(database: Database) -> FastAPI:
    """A bare FastAPI app: no authentication, no policy, no encryption, no audit."""
    metadata = sa.MetaData()
    rows = sa.Table(
        "bench_row",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("key", sa.String(64), index=True),
        sa.Column("body", sa.Text),
    )
    metadata.create_all(database.engine)
    app = FastAPI()

    @app.get("/rows/{row_id}")
    def read(row_id: uuid.UUID) -> Response:
        with database.unit_of_work() as session:
            body = session.execute(sa.select(rows.c.body).where(rows.c.id == row_id)).scalar_one()
        return Response(content=body, media_type="application/json")

    @app.get("/rows")
    def search(key: str) -> Response:
        with database.unit_of_work() as session:
            bodies = session.execute(sa.select(rows.c.body).where(rows.c.key == key).limit(11))
            content = "[" + ",".join(bodies.scalars()) + "]"
        return Response(content=content, media_type="application/json")

    @app.post("/rows", status_code=201)
    async def create(request: Request) -> Response:
        body = (await request.body()).decode()
        json.loads(body)
        row_id = uuid.uuid4()
        with database.unit_of_work() as session:
            session.execute(rows.insert().values(id=row_id, key="new", body=body))
        return Response(content=body, status_code=201, media_type="application/json")

    app.state.rows = rows
    return app


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--audit-mode", choices=["simple", "sequencer"], default="simple")
    parser.add_argument("--admin-url", default=os.environ.get("HDS_TEST_DATABASE_URL"))
    args = parser.parse_args()
    admin = args.admin_url
    if not admin:
        raise SystemExit("--admin-url: a PostgreSQL admin URL")
    name = f"hds_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        run(url, args)
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def run(url: str, args: argparse.Namespace) -> None:
    migrations.upgrade(url)
    workdir = Path(tempfile.mkdtemp(prefix="hdsapp-bench-fhir-"))
    settings = Settings.model_validate(
        {"data_dir": workdir, "database_url": url, "audit_mode": args.audit_mode}
    )
    accesslog.configure(args.audit_mode)
    database = Database(url)
    app = create_app(settings, database)
    with TestClient(app, base_url="https://testserver") as client:
        keyring = app.state.keyring
        now = utcnow()
        with database.unit_of_work() as session:
            coordinator = identity.create_user(
                session=session,
                actor=system_actor(),
                email="coordinator@bench.example",
                display_name="Coordinator",
                password=None,
                now=now,
            ).user
            clinician = identity.create_user(
                session=session,
                actor=system_actor(),
                email="clinician@bench.example",
                display_name="Clinician",
                password="correct horse battery staple",
                rpps="10000000001",
                now=now,
            ).user
        with database.unit_of_work() as session:
            group = groups.create_group(
                session=session,
                database=database,
                actor=system_actor(),
                settings=settings,
                keyring=keyring,
                name="Bench group",
                description=None,
                coordinator_email="coordinator@bench.example",
            ).id
        with database.unit_of_work() as session:
            groups.add_member(
                session=session,
                database=database,
                actor=system_actor(),
                settings=settings,
                group_id=group,
                email="clinician@bench.example",
                role=Role.CLINICIAN,
            )
        with database.unit_of_work() as session:
            user = identity_repository.user_by_id(session, clinician.id)
            token = identity.create_token(
                session=session,
                settings=settings,
                actor=system_actor(),
                user=user,
                name="bench",
                scopes="read,write",
                expires_in="1d",
                now=utcnow(),
            ).token
        del coordinator
        headers = {"Authorization": f"Bearer {token}"}
        post_headers = {**headers, "Content-Type": "application/fhir+json"}
        base = f"/fhir/{group}"

        def fhir_create(resource: dict[str, Any]) -> str:
            response = client.post(
                f"{base}/Patient", content=json.dumps(resource), headers=post_headers
            )
            assert response.status_code == 201, response.text
            created: str = response.json()["id"]
            return created

        ids = [fhir_create(patient("Population", "1970-01-01")) for _ in range(args.patients)]
        for _ in range(10):
            fhir_create(patient("Dix-Résultats", "1980-02-29"))

        plain = baseline_app(database)
        rows = plain.state.rows
        row_ids = [uuid.uuid4() for _ in range(args.patients)]
        with database.unit_of_work() as session:
            session.execute(
                rows.insert(),
                [
                    {"id": rid, "key": "population", "body": json.dumps(patient("P", "1970-01-01"))}
                    for rid in row_ids
                ]
                + [
                    {"id": uuid.uuid4(), "key": "ten", "body": json.dumps(patient("T", "2000"))}
                    for _ in range(10)
                ],
            )
        with TestClient(plain, base_url="https://testserver") as bare:

            def bare_read() -> None:
                response = bare.get(f"/rows/{random.choice(row_ids)}")
                assert response.status_code == 200

            def bare_search() -> None:
                response = bare.get("/rows", params={"key": "ten"})
                assert len(response.json()) == 10

            def bare_create() -> None:
                response = bare.post("/rows", content=json.dumps(patient("New", "1990-01-01")))
                assert response.status_code == 201

            def fhir_read() -> None:
                response = client.get(f"{base}/Patient/{random.choice(ids)}", headers=headers)
                assert response.status_code == 200, response.text

            def fhir_search() -> None:
                response = client.get(
                    f"{base}/Patient",
                    params={"family": "Dix-Résultats", "birthdate": "1980-02-29", "_count": "10"},
                    headers=headers,
                )
                assert response.json()["total"] == 10, response.text

            def fhir_create_one() -> None:
                fhir_create(patient("New", "1990-01-01"))

            api = f"/api/v1/groups/{group}/patients"

            def api_read() -> None:
                response = client.get(f"{api}/{random.choice(ids)}", headers=headers)
                assert response.status_code == 200, response.text

            def api_search() -> None:
                response = client.get(
                    api,
                    params={"family": "Dix-Résultats", "birthdate": "1980-02-29", "limit": "10"},
                    headers=headers,
                )
                assert response.json()["total"] == 10, response.text

            def api_create() -> None:
                response = client.post(api, json=patient("New", "1990-01-01"), headers=headers)
                assert response.status_code == 201, response.text

            cases: dict[str, tuple[Callable[[], None], ...]] = {
                "read": (bare_read, fhir_read, api_read),
                "search (10 hits)": (bare_search, fhir_search, api_search),
                "create": (bare_create, fhir_create_one, api_create),
            }
            for actions in cases.values():  # warm-up: caches, connections
                for _ in range(20):
                    for action in actions:
                        action()
            samples: dict[str, tuple[list[float], ...]] = {name: ([], [], []) for name in cases}
            for _ in range(args.rounds):
                for name, actions in cases.items():
                    for index, action in enumerate(actions):
                        samples[name][index].append(timed(action))
    database.dispose()
    report(samples, args)


def report(samples: dict[str, tuple[list[float], ...]], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average"
        f" {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; PostgreSQL; audit mode {args.audit_mode};"
        f" {args.rounds} rounds, {args.patients} patients"
    )
    print()
    print(
        "| case | baseline ms | FHIR ms (p90) | /api/v1 ms | ratio baseline/FHIR (goal)"
        " | ratio /api/v1 / FHIR |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (baseline, fhir, api) in samples.items():
        base_ms = statistics.median(baseline) * 1000
        fhir_ms = statistics.median(fhir) * 1000
        api_ms = statistics.median(api) * 1000
        p90 = statistics.quantiles(fhir, n=10)[-1] * 1000
        ratio = base_ms / fhir_ms
        verdict = "met" if ratio >= GOALS[name] else "not met"
        print(
            f"| {name} | {base_ms:.2f} | {fhir_ms:.2f} ({p90:.2f}) | {api_ms:.2f}"
            f" | {ratio:.2f} ({GOALS[name]}: {verdict}) | {api_ms / fhir_ms:.2f} |"
        )


if __name__ == "__main__":
    main()
