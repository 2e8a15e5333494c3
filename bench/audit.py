"""Audit log benchmarks (not a test): appends/s, verification, proofs, checkpoint coverage.

    .venv/bin/python bench/audit.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Goals (issue "Verifiable audit trail"): >= 1,000 appends/s with 8 writers on PostgreSQL;
verify 1 M entries <= 5 s; a proof <= 10 ms p99; an entry under a signed checkpoint <= 2 s
p99. Each measure prints one JSON line; --markdown prints the RESULTS.md section.

- appends: 8 processes, each appending one entry per transaction (one request's pattern:
  `record` then commit), for --seconds; simple mode (the head row locked FOR UPDATE).
- verify: the `audit` library alone, on 1 M generated leaves: an export of them (events
  withheld, as for other groups' entries) through `audit.verify.verify_export`, then the same
  with every event disclosed (commitment recomputed from the event); plus the root alone.
- proofs: a stored tree of --tree entries in PostgreSQL (appended in batches through
  `hdsapp.core.accesslog.append`), then inclusion and consistency proofs through the service
  (two queries each), p50/p99 over random indexes.
- coverage: writers append while the signer runs every second as the scheduled task does
  (`sign_new_checkpoint`), time from an entry's commit to the commit of the first checkpoint
  that covers it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, make_url, text

from audit import b64
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.compact_range import CompactRange
from audit.export import ExportEntry, build_export, parse_export
from audit.leaf import Leaf, new_nonce
from audit.merkle import (
    MemoryHashSource,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from audit.note import Signer
from audit.verify import verify_export
from hdsapp import migrations
from hdsapp.auditing import repository, service
from hdsapp.core.accesslog import Access, append, configure, prepare, record, sequence_all
from hdsapp.core.actor import Actor, RequestInfo, Role, system_actor
from hdsapp.core.db import Database

ORIGIN = "bench.example/hdsapp-audit"
TIME_MS = 1795341600000  # 2026-11-22T10:00:00Z


# -- databases ------------------------------------------------------------------------------


def fresh_database(admin_url: str) -> str:
    name = f"hds_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    return url


def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def actor_and_access(worker: int, i: int) -> tuple[Any, Any]:

    group = uuid.UUID(int=worker + 1)
    actor = Actor(
        kind="user",
        request=RequestInfo(request_id=f"bench-{worker}-{i}", client_ip="10.0.0.1", user_agent="b"),
        user_id=uuid.UUID(int=1000 + worker),
        memberships={group: Role.CLINICIAN},
    )
    access = Access(
        kind="read",
        action="R",
        group_id=group,
        patient_id=uuid.UUID(int=10_000 + i % 500),
        resource_type="Communication",
        resource_id=str(i),
        legal_basis="care-team",
    )
    return actor, access


# -- appends --------------------------------------------------------------------------------


def _writer(url: str, worker: int, seconds: float, start: Any, out: Any) -> None:

    database = Database(url, pool_size=1)
    start.wait()
    deadline = time.monotonic() + seconds
    count = 0
    latencies = []
    while time.monotonic() < deadline:
        actor, access = actor_and_access(worker, count)
        began = time.perf_counter()
        with database.unit_of_work() as session:
            record(session, actor, access)
        latencies.append(time.perf_counter() - began)
        count += 1
    database.dispose()
    out.put((count, latencies))


def _sequencer_loop(url: str, stop: threading.Event, placed: list[int]) -> None:
    database = Database(url)
    while not stop.is_set():
        moved = sequence_all(database, limit=5000)
        placed.append(moved)
        if not moved:
            stop.wait(0.05)
    database.dispose()


def bench_appends(url: str, writers: int, seconds: float, mode: str) -> dict[str, Any]:
    os.environ["HDS_AUDIT_MODE"] = mode  # inherited by the spawned writers
    configure(mode)  # type: ignore[arg-type]
    stop, placed = threading.Event(), []
    sequencer = threading.Thread(target=_sequencer_loop, args=(url, stop, placed), daemon=True)
    if mode == "sequencer":
        sequencer.start()
    context = mp.get_context("spawn")
    start, out = context.Event(), context.Queue()
    processes = [
        context.Process(target=_writer, args=(url, w, seconds, start, out)) for w in range(writers)
    ]
    for p in processes:
        p.start()
    time.sleep(3)  # imports and connections
    started = time.monotonic()
    start.set()
    results = [out.get() for _ in processes]
    elapsed = time.monotonic() - started
    for p in processes:
        p.join()
    drain_s = 0.0
    if mode == "sequencer":
        began = time.monotonic()
        stop.set()
        sequencer.join()
        sequence_all(Database(url), limit=5000, budget_s=600)
        drain_s = time.monotonic() - began
    total = sum(c for c, _ in results)
    latencies = sorted(x for _, lat in results for x in lat)
    check = verify_stored(url)
    return {
        "measure": f"appends ({mode})",
        "writers": writers,
        "seconds": round(elapsed, 2),
        "appends": total,
        "appends_per_s": round(total / elapsed),
        "commit_latency_ms_p50": round(1000 * latencies[len(latencies) // 2], 2),
        "commit_latency_ms_p99": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
        "gap_free_and_verified": check,
        **({"drain_after_s": round(drain_s, 2)} if mode == "sequencer" else {}),
    }


def verify_stored(url: str) -> bool:

    with repository.snapshot(url) as session:
        report = service.verify_log(session=session, verifiers=[], pinned=False)
    return report.ok


# -- verification with the audit library -----------------------------------------------------


def generated_entries(n: int, disclose: bool) -> tuple[list[ExportEntry], list[bytes]]:
    event = {
        "resourceType": "AuditEvent",
        "action": "R",
        "outcome": "0",
        "recorded": "2026-11-22T10:00:00.000Z",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
    }
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    entries, hashes = [], []
    nonce = new_nonce()
    commitment = hashlib.sha256(nonce + canonical).digest()
    for i in range(n):
        leaf = Leaf(
            position=i, time_ms=1795341600000, kind="read", outcome=0, commitment=commitment
        )
        data = leaf.encode()
        hashes.append(leaf_hash(data))
        if disclose:
            entries.append(ExportEntry(leaf=data, event=event, nonce=nonce, full_url=f"urn:e:{i}"))
        else:
            entries.append(ExportEntry(leaf=data))
    return entries, hashes


class _PrefixSource:
    """Subtree hashes of generated leaves, from a level cache (what a store of tiles gives)."""

    def __init__(self, hashes: list[bytes]) -> None:
        self.memory = MemoryHashSource(hashes)

    def subtree_hash(self, start: int, end: int) -> bytes:
        return self.memory.subtree_hash(start, end)


def bench_verify(n: int) -> dict[str, Any]:
    signer = Signer.generate(ORIGIN)
    results: dict[str, Any] = {"measure": "verify", "entries": n}
    for disclose in (False, True):
        entries, hashes = generated_entries(n, disclose)
        tree_root = root(hashes)
        note = sign_checkpoint(Checkpoint(ORIGIN, n, tree_root), [signer])
        document = build_export(
            origin=ORIGIN,
            verifier_keys=[str(signer.verifier)],
            start=0,
            entries=entries,
            checkpoints=[note],
            source=_PrefixSource(hashes),
        )
        data = json.dumps(document).encode()
        del entries, document
        # CPU time of this one thread: the goal is "on one core", and a shared machine's wall
        # clock counts the other processes too (both are reported).
        began, began_cpu = time.perf_counter(), time.thread_time()
        export = parse_export(data)
        parsed_cpu = time.thread_time()
        report = verify_export(export, [signer.verifier])
        done, done_cpu = time.perf_counter(), time.thread_time()
        assert report.ok, report.error
        label = "disclosed" if disclose else "leaves_only"
        results[f"{label}_parse_cpu_s"] = round(parsed_cpu - began_cpu, 2)
        results[f"{label}_verify_cpu_s"] = round(done_cpu - parsed_cpu, 2)
        results[f"{label}_total_cpu_s"] = round(done_cpu - began_cpu, 2)
        results[f"{label}_total_wall_s"] = round(done - began, 2)
        results[f"{label}_export_mb"] = round(len(data) / 1e6, 1)
    began_cpu = time.thread_time()
    compact = CompactRange()
    for h in hashes:
        compact.append(h)
    assert compact.root() == tree_root
    results["root_of_leaf_hashes_cpu_s"] = round(time.thread_time() - began_cpu, 2)
    return results


# -- proofs over a large stored tree -----------------------------------------------------------


def fill(url: str, n: int, batch: int = 5000) -> float:

    database = Database(url)
    began = time.perf_counter()
    done = 0
    # A thousand distinct events, cycled: the leaves still differ (each carries its position),
    # and the fill costs what appending costs, not what building events costs.
    templates = [prepare(*actor_and_access(0, k)) for k in range(1000)]
    while done < n:
        size = min(batch, n - done)
        entries = [templates[(done + k) % len(templates)] for k in range(size)]
        with database.unit_of_work() as session:
            append(session, entries)
        done += size
    database.dispose()
    return time.perf_counter() - began


def bench_proofs(url: str, n: int, samples: int) -> dict[str, Any]:

    fill_s = fill(url, n)
    database = Database(url)
    signer = Signer.generate(ORIGIN)
    with database.unit_of_work() as session:
        service.sign_new_checkpoint(session=session, signer=signer)
    actor = system_actor()
    rng = random.Random(7)
    inclusion, consistency = [], []
    with database.session() as session:
        checkpoint = repository.latest_checkpoint(session)
        assert checkpoint is not None
        size, tree_root = checkpoint.tree_size, checkpoint.root_hash
        for _ in range(samples):
            index = rng.randrange(size)
            began = time.perf_counter()
            proof = service.inclusion(session=session, actor=actor, index=index, tree_size=size)
            inclusion.append(time.perf_counter() - began)
            verify_inclusion(
                index, size, b64.decode(proof.leaf_hash), [b64.decode(h) for h in proof.proof],
                tree_root,
            )  # fmt: skip
            session.rollback()
        for _ in range(samples):
            first = rng.randrange(1, size)
            began = time.perf_counter()
            c = service.consistency(session=session, actor=actor, first=first, second=size)
            consistency.append(time.perf_counter() - began)
            session.rollback()
        head = repository.head(session)
        verify_consistency(size, size, tree_root, head.compact.root(), [])
        del c
    database.dispose()

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)

    return {
        "measure": "proofs",
        "tree_size": n,
        "fill_s": round(fill_s, 1),
        "samples": samples,
        "inclusion_ms_p50": pct(inclusion, 0.5),
        "inclusion_ms_p99": pct(inclusion, 0.99),
        "consistency_ms_p50": pct(consistency, 0.5),
        "consistency_ms_p99": pct(consistency, 0.99),
        "mean_inclusion_ms": round(1000 * statistics.fmean(inclusion), 2),
    }


# -- coverage ----------------------------------------------------------------------------------


def _paced_writer(url: str, worker: int, seconds: float, rate: float, out: Any) -> None:

    database = Database(url, pool_size=1)
    deadline = time.monotonic() + seconds
    committed = []
    i = 0
    while time.monotonic() < deadline:
        actor, access = actor_and_access(worker, i)
        with database.unit_of_work() as session:
            position = record(session, actor, access)
        committed.append((position, time.time()))
        i += 1
        time.sleep(random.expovariate(rate))
    database.dispose()
    out.put(committed)


def bench_coverage(
    url: str, seconds: float, writers: int, rate: float, period: float
) -> dict[str, Any]:

    database = Database(url)
    signer = Signer.generate(ORIGIN)
    signed: list[tuple[int, float]] = []
    stop = threading.Event()

    def signer_loop() -> None:
        # As beat does: one run every `period` seconds, whatever the previous took.
        next_run = time.monotonic()
        while not stop.is_set():
            with database.unit_of_work() as session:
                result = service.sign_new_checkpoint(session=session, signer=signer)
            if result.signed and result.checkpoint_size is not None:
                signed.append((result.checkpoint_size, time.time()))
            next_run += period
            stop.wait(max(0.0, next_run - time.monotonic()))

    thread = threading.Thread(target=signer_loop, daemon=True)
    thread.start()
    context = mp.get_context("spawn")
    out = context.Queue()
    processes = [
        context.Process(target=_paced_writer, args=(url, w, seconds, rate, out))
        for w in range(writers)
    ]
    for p in processes:
        p.start()
    committed = [c for _ in processes for c in out.get()]
    for p in processes:
        p.join()
    time.sleep(period * 2 + 0.5)
    stop.set()
    thread.join()
    database.dispose()
    delays = []
    for position, at in committed:
        covering = next(t for size, t in signed if size > position)
        delays.append(max(0.0, covering - at))
    delays.sort()
    return {
        "measure": "coverage",
        "entries": len(delays),
        "signer_period_s": period,
        "checkpoints": len(signed),
        "coverage_s_p50": round(delays[len(delays) // 2], 3),
        "coverage_s_p99": round(delays[int(len(delays) * 0.99)], 3),
        "coverage_s_max": round(delays[-1], 3),
    }


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "?"

    return {
        "nproc": run("nproc"),
        "lscpu": "\n".join(run("lscpu").splitlines()[:20]),
        "python": platform.python_version(),
        "postgresql": "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("HDS_TEST_DATABASE_URL", ""))
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--verify-entries", type=int, default=1_000_000)
    parser.add_argument("--tree", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--coverage-seconds", type=float, default=30)
    parser.add_argument("--only", choices=["appends", "verify", "proofs", "coverage"])
    parser.add_argument("--mode", choices=["simple", "sequencer"], help="appends: one mode only")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    results = []
    info = machine()
    if args.only in (None, "verify"):
        results.append(bench_verify(args.verify_entries))
        print(json.dumps(results[-1]), flush=True)
    if args.pg:
        engine = create_engine(args.pg)
        with engine.connect() as connection:
            info["postgresql"] = connection.execute(text("SHOW server_version")).scalar_one()
        engine.dispose()
        modes = [args.mode] if args.mode else ["simple", "sequencer"]
        runs: list[tuple[str, Any]] = [
            ("appends", lambda url, m=m: bench_appends(url, args.writers, args.seconds, m))
            for m in modes
        ]
        runs += [
            ("proofs", lambda url: bench_proofs(url, args.tree, args.samples)),
            ("coverage", lambda url: bench_coverage(url, args.coverage_seconds, 4, 20.0, 1.0)),
        ]
        for name, run in runs:
            if args.only not in (None, name):
                continue
            url = fresh_database(args.pg)
            try:
                results.append(run(url))
            finally:
                drop_database(args.pg, url)
            print(json.dumps(results[-1]), flush=True)
    if args.markdown:
        print(markdown(results, info))


def markdown(results: list[dict[str, Any]], info: dict[str, str]) -> str:
    lines = [
        "## audit",
        "",
        f"`{' '.join(sys.argv)}` on {time.strftime('%Y-%m-%d')}, Python {info['python']},"
        f" PostgreSQL {info['postgresql'] or 'n/a'}, nproc {info['nproc']}.",
        "",
        "```",
        info["lscpu"],
        "```",
        "",
        "| measure | result |",
        "| --- | --- |",
    ]
    for r in results:
        fields = ", ".join(f"{k} {v}" for k, v in r.items() if k != "measure")
        lines.append(f"| {r['measure']} | {fields} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
