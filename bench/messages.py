"""Messages benchmark (not a test): posting and reading against a bare FastAPI baseline.

    .venv/bin/python -m bench.messages --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

(As a module: run as a script, bench/ comes first on sys.path and bench/audit.py would shadow
the audit package.)

One run, one fresh PostgreSQL database, two apps served by uvicorn on loopback (one process
each), driven over HTTP/1.1 keep-alive by httpx clients in threads:

- baseline: a bare FastAPI app (this file, ``baseline_app``) whose POST inserts one row and
  commits, and whose GET reads the last 50 rows of a 1,000-row set; sync endpoints on a
  SQLAlchemy pool, as hdsapp's are;
- hdsapp: ``POST /api/v1/threads/{tid}/messages`` (personal access token, policy, sealing with
  the thread's key, seq under the thread's lock, one audit entry) at concurrency 1 and 16 (each
  client posting to its own thread), and ``GET /api/v1/threads/{tid}/messages?after=...&limit=50``
  (the last 50, opened, one audit entry) at concurrency 16.

Each measure runs for --seconds after a warm-up; throughput is reported as a ratio to the
baseline of the same run (posting to the insert baseline at the same concurrency, reading to
the read baseline), with p50/p99 latencies. Then the scale check: post and read p50 in a thread
of 1,000 messages and in one of 100,000 (seeded by SQL; only the newest 200 are real sealed
messages), concurrency 1.

Goals (issue "Case threads"): posting >= 0.4x the insert baseline, reading the last 50 >= 0.4x
the read baseline; post and read p50 at 100,000 messages <= 1.2x their value at 1,000.
``--markdown`` prints the RESULTS.md section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import create_engine, make_url, text

from hdsapp import cli
from hdsapp.config import Settings
from hdsapp.core.actor import ALL_SCOPES, Actor, RequestInfo, Role, system_actor
from hdsapp.core.crypto.keyring import keyring_for
from hdsapp.core.db import Database, utcnow
from hdsapp.identity import service as identity
from hdsapp.models.care_group import CareGroup
from hdsapp.models.membership import Membership
from hdsapp.threads import service as threads
from hdsapp.threads.schemas import MessageCreate, ThreadCreate

BODY = "Pansement refait ce matin, plaie propre, pas de signe d'infection. Prochain passage J+2. "
EXTERNAL_PATIENT = "https://fhir.example.org/fhir/Patient/bench"
SEALED_TAIL = 200


# -- the baseline app -------------------------------------------------------------------------


def baseline_app() -> FastAPI:
    """Insert one row and commit; read the last 50 rows. Nothing else."""
    engine = create_engine(os.environ["BENCH_BASELINE_URL"], pool_size=20, max_overflow=20)
    app = FastAPI()

    @app.post("/items", status_code=201)
    def insert(payload: dict[str, str]) -> dict[str, str]:
        item = uuid.uuid4()
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO bench_item (id, body, created_at) VALUES (:id, :body, now())"),
                {"id": item, "body": payload["body"].encode()},
            )
        return {"id": str(item)}

    @app.get("/items")
    def last_50() -> dict[str, list[dict[str, str]]]:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, seq, body, created_at FROM bench_read ORDER BY seq DESC LIMIT 50")
            ).all()
        items = [
            {"id": str(r.id), "seq": str(r.seq), "body": bytes(r.body).decode()}
            for r in reversed(rows)
        ]
        return {"items": items}

    return app


# -- databases and servers --------------------------------------------------------------------


def fresh_database(admin_url: str) -> str:
    name = f"hds_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(target: str, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz" if "hdsapp" in target else f"{base}/items", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- driving ----------------------------------------------------------------------------------

Request = Callable[[httpx.Client, int], httpx.Response]


def drive(
    base: str,
    request: Request,
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    headers: dict[str, str] | None = None,
    expect: int,
) -> dict[str, float]:
    """``concurrency`` clients (threads, one keep-alive connection each) call ``request`` in
    a loop; throughput and latencies over ``seconds`` after ``warmup``."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    start = threading.Barrier(concurrency + 1)
    state = {"measuring": False, "stop": False}

    def client(worker: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            start.wait()
            n = 0
            while not state["stop"]:
                began = time.perf_counter()
                response = request(http, worker * 10_000_000 + n)
                elapsed = time.perf_counter() - began
                n += 1
                if response.status_code != expect:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    return
                if state["measuring"]:
                    latencies[worker].append(elapsed)

    workers = [threading.Thread(target=client, args=(w,)) for w in range(concurrency)]
    for worker in workers:
        worker.start()
    start.wait()
    time.sleep(warmup)
    state["measuring"] = True
    began = time.perf_counter()
    time.sleep(seconds)
    state["measuring"] = False
    elapsed = time.perf_counter() - began
    state["stop"] = True
    for worker in workers:
        worker.join()
    if errors:
        raise RuntimeError(f"requests failed: {errors[0]}")
    samples = sorted(x for per in latencies for x in per)
    return {
        "requests": len(samples),
        "per_second": round(len(samples) / elapsed, 1),
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 2),
    }


# -- seeding ----------------------------------------------------------------------------------


def clinician(user: uuid.UUID, group: uuid.UUID) -> Actor:
    return Actor(
        kind="user",
        request=RequestInfo(request_id="bench-seed"),
        user_id=user,
        memberships={group: Role.CLINICIAN},
        scopes=ALL_SCOPES,
    )


def seed_hdsapp(settings: Settings, *, threads_wanted: int) -> dict[str, Any]:
    """A user with a token, a care group, ``threads_wanted`` empty threads, and the 1,000- and
    100,000-message threads (bulk by SQL, the newest SEALED_TAIL sealed for real)."""
    database = Database(settings.effective_database_url)
    keyring = keyring_for(settings)
    now = utcnow()
    with database.unit_of_work() as session:
        created = identity.create_user(
            session=session,
            actor=system_actor(),
            email="bench@example.org",
            display_name="Bench",
            password=None,
            now=now,
        )
        user = created.user
        user.status = "active"
        group = CareGroup(name="Bench group")
        session.add(group)
        session.flush()
        session.add(Membership(group_id=group.id, user_id=user.id, role="clinician"))
        session.flush()
        token = identity.create_token(
            session=session,
            settings=settings,
            actor=system_actor(),
            user=user,
            name="bench",
            scopes="read,write",
            expires_in="1d",
            now=now,
        ).token
    actor = clinician(user.id, group.id)

    def open_thread(title: str) -> uuid.UUID:
        with database.unit_of_work() as session:
            return threads.open_thread(
                session=session,
                database=database,
                actor=actor,
                settings=settings,
                keyring=keyring,
                group_id=group.id,
                request=ThreadCreate(patient=EXTERNAL_PATIENT, title=title),
            ).id

    posting = [open_thread(f"post {n}") for n in range(threads_wanted)]
    sized = {size: open_thread(f"{size} messages") for size in (1_000, 100_000)}
    for size, tid in sized.items():
        bulk = size - SEALED_TAIL
        with database.unit_of_work() as session:
            session.execute(
                text(
                    "INSERT INTO message (id, thread_id, seq, author_id, client_id, body,"
                    " created_at) SELECT gen_random_uuid(), :t, n, :u, 'seed-' || n,"
                    " '\\x00'::bytea, now() FROM generate_series(1, :bulk) AS n"
                ),
                {"t": tid, "u": user.id, "bulk": bulk},
            )
            session.execute(
                text("UPDATE thread SET last_seq = :n WHERE id = :t"), {"n": bulk, "t": tid}
            )
        for start in range(0, SEALED_TAIL, 50):
            with database.unit_of_work() as session:
                for n in range(start, start + 50):
                    threads.post_message(
                        session=session,
                        database=database,
                        actor=actor,
                        settings=settings,
                        keyring=keyring,
                        thread_id=tid,
                        request=MessageCreate(body=BODY, client_id=f"tail-{n}"),
                    )
        with database.unit_of_work() as session:
            session.execute(text("ANALYZE"))
    database.dispose()
    return {"token": token, "posting": posting, "sized": sized}


def seed_baseline(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE bench_item (id uuid PRIMARY KEY, body bytea NOT NULL,"
                " created_at timestamptz NOT NULL)"
            )
        )
        connection.execute(
            text(
                "CREATE TABLE bench_read (id uuid PRIMARY KEY, seq integer UNIQUE NOT NULL,"
                " body bytea NOT NULL, created_at timestamptz NOT NULL)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO bench_read SELECT gen_random_uuid(), n, convert_to(:body, 'UTF8'),"
                " now() FROM generate_series(1, 1000) AS n"
            ),
            {"body": BODY},
        )
    engine.dispose()


# -- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = fresh_database(args.pg)
    workdir = Path(tempfile.mkdtemp(prefix="hdsapp-bench-"))
    env = {
        "HDS_DATA_DIR": str(workdir),
        "HDS_DATABASE_URL": url,
        "HDS_LOG_LEVEL": "WARNING",
        "HDS_DB_POOL_SIZE": "20",
    }
    results: dict[str, Any] = {}
    try:
        settings = Settings.model_validate(
            {"data_dir": workdir, "database_url": url, "db_pool_size": 20}
        )
        cli.initialise(settings)
        seeded = seed_hdsapp(settings, threads_wanted=16)
        seed_baseline(url)
        token = seeded["token"]
        auth = {"Authorization": f"Bearer {token}"}
        common = {"seconds": args.seconds, "warmup": args.warmup}

        def insert(http: httpx.Client, n: int) -> httpx.Response:
            return http.post("/items", json={"body": BODY})

        def read_baseline(http: httpx.Client, n: int) -> httpx.Response:
            return http.get("/items")

        with served("bench.messages:baseline_app", {"BENCH_BASELINE_URL": url}) as base:
            for c in (1, 16):
                results[f"baseline insert c{c}"] = drive(
                    base, insert, concurrency=c, expect=201, **common
                )
            results["baseline read-50 c16"] = drive(
                base, read_baseline, concurrency=16, expect=200, **common
            )

        posting: list[uuid.UUID] = seeded["posting"]
        sized: dict[int, uuid.UUID] = seeded["sized"]

        def poster(thread_of: Callable[[int], uuid.UUID]) -> Request:
            def post(http: httpx.Client, n: int) -> httpx.Response:
                tid = thread_of(n)
                return http.post(
                    f"/api/v1/threads/{tid}/messages",
                    json={"body": BODY, "client_id": uuid.uuid4().hex},
                )

            return post

        def last_50(tid: uuid.UUID, size: int) -> Request:
            def read(http: httpx.Client, n: int) -> httpx.Response:
                # The thread's seq is known here: one request, as the baseline's.
                return http.get(
                    f"/api/v1/threads/{tid}/messages", params={"after": size - 50, "limit": 50}
                )

            return read

        with served("hdsapp.app:create_app", env) as base:
            results["hdsapp post c1"] = drive(
                base,
                poster(lambda n: posting[0]),
                concurrency=1,
                headers=auth,
                expect=201,
                **common,
            )
            results["hdsapp post c16"] = drive(
                base,
                poster(lambda n: posting[n // 10_000_000]),
                concurrency=16,
                headers=auth,
                expect=201,
                **common,
            )
            results["hdsapp post c16, one thread"] = drive(
                base,
                poster(lambda n: posting[1]),
                concurrency=16,
                headers=auth,
                expect=201,
                **common,
            )
            results["hdsapp read-50 c16"] = drive(
                base,
                last_50(sized[1_000], 1_000),
                concurrency=16,
                headers=auth,
                expect=200,
                **common,
            )
            for size, tid in sized.items():
                results[f"hdsapp read-50 c1 @{size}"] = drive(
                    base, last_50(tid, size), concurrency=1, headers=auth, expect=200, **common
                )
                results[f"hdsapp post c1 @{size}"] = drive(
                    base,
                    poster(lambda n, t=tid: t),  # type: ignore[misc]
                    concurrency=1,
                    headers=auth,
                    expect=201,
                    **common,
                )
    finally:
        drop_database(args.pg, url)
    return results


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    def ratio(a: str, b: str) -> float:
        return round(float(results[a]["per_second"]) / float(results[b]["per_second"]), 2)

    def growth(kind: str) -> float:
        at_100k = float(results[f"hdsapp {kind} c1 @100000"]["p50_ms"])
        return round(at_100k / float(results[f"hdsapp {kind} c1 @1000"]["p50_ms"]), 2)

    figures = {
        "post c1 / insert c1": ratio("hdsapp post c1", "baseline insert c1"),
        "post c16 / insert c16": ratio("hdsapp post c16", "baseline insert c16"),
        "post c16 one thread / insert c16": ratio(
            "hdsapp post c16, one thread", "baseline insert c16"
        ),
        "read-50 c16 / read-50 c16": ratio("hdsapp read-50 c16", "baseline read-50 c16"),
        "post p50 @100k / @1k": growth("post"),
        "read p50 @100k / @1k": growth("read-50"),
    }
    goals = {
        "post c1 / insert c1": (">=", 0.4),
        "post c16 / insert c16": (">=", 0.4),
        "read-50 c16 / read-50 c16": (">=", 0.4),
        "post p50 @100k / @1k": ("<=", 1.2),
        "read p50 @100k / @1k": ("<=", 1.2),
    }
    met = {
        name: (figures[name] >= bound if op == ">=" else figures[name] <= bound)
        for name, (op, bound) in goals.items()
    }
    return {
        "figures": figures,
        "goals": {k: f"{op} {b}" for k, (op, b) in goals.items()},
        "met": met,
    }


def markdown(results: dict[str, Any], summary: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "## messages",
        "",
        f"Command: `.venv/bin/python -m bench.messages --pg <admin URL> --seconds {args.seconds}`"
        " (PostgreSQL on loopback; both apps served by one uvicorn process each; httpx clients"
        " in threads on the same machine).",
        "",
        f"Machine: `nproc` = {os.cpu_count()}; {platform.processor() or platform.machine()};"
        f" Python {platform.python_version()}.",
        "",
        "| measure | req/s | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in results.items():
        lines.append(f"| {name} | {row['per_second']} | {row['p50_ms']} | {row['p99_ms']} |")
    lines += ["", "| goal | measured | target | met |", "| --- | ---: | --- | --- |"]
    for name, value in summary["figures"].items():
        target = summary["goals"].get(name, "(information)")
        met = summary["met"].get(name)
        shown = "-" if met is None else "yes" if met else "no"
        lines.append(f"| {name} | {value} | {target} | {shown} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="PostgreSQL admin URL")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    results = run(args)
    summary = verdict(results)
    for name, row in results.items():
        print(json.dumps({"measure": name, **row}))
    print(json.dumps(summary))
    if args.markdown:
        print(markdown(results, summary, args))


if __name__ == "__main__":
    main()
