"""Cost of the key store per message, against raw AES-GCM in the same run.

    .venv/bin/python -m bench.keyring [--iterations N] [--rounds N] [--size BYTES]
        [--postgresql URL]

One operation seals then opens one message (1 KiB unless --size) through ``Keyring`` with the
data key cached, inside one unit of work: seals are counted in the database in blocks reserved
per transaction (``UPDATE ... RETURNING`` on the key's row), opens confirm the key's row once
per transaction. The "first in transaction" cases pay that statement every time, as a request
that seals or opens once does (the transaction's own BEGIN and COMMIT are not counted).
Goals (bench/RESULTS.md, "keyring"): <= 20 us added per message, <= 2x raw AES-GCM. Times are
the best of the rounds, which interleave the cases, in microseconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import Session

from hdsapp import migrations
from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.keyring import _MEMO as MEMO
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.crypto.providers.local import LocalKeyProvider
from hdsapp.core.db import Database

GOAL_OVERHEAD_US = 20.0
GOAL_RATIO = 2.0
RAW = "raw AESGCM, cipher reused"


def best_us(
    cases: dict[str, Callable[[], object]], iterations: int, rounds: int
) -> dict[str, float]:
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, operation in cases.items():
            elapsed = timeit.timeit(operation, number=iterations)
            best[name] = min(best[name], elapsed / iterations * 1e6)
    return best


def keyring_cases(
    name: str, database: Database, keyring: Keyring, message: bytes
) -> tuple[dict[str, Callable[[], object]], Session]:
    group, thread = uuid.uuid4(), uuid.uuid4()
    aad = AssociatedData(
        RecordKind.MESSAGE,
        group_id=str(group),
        thread_id=str(thread),
        record_id="b3c4d5e6-f708-4192-a3b4-c5d6e7f80912",
        author_id="c4d5e6f7-0819-4a2b-b4c5-d6e7f8091a2b",
    )
    with database.unit_of_work() as session:
        keyring.create_thread_key(session, group_id=group, thread_id=thread)
        sealed = keyring.seal(session, aad=aad, plaintext=message)
    session = database.session()
    session.begin()

    def round_trip() -> None:
        envelope = keyring.seal(session, aad=aad, plaintext=message)
        keyring.open(session, aad=aad, envelope=envelope)

    def open_only() -> None:
        keyring.open(session, aad=aad, envelope=sealed)

    def seal_only() -> None:
        keyring.seal(session, aad=aad, plaintext=message)

    def first_seal() -> None:
        session.info.pop(MEMO, None)  # as in a new transaction: count in the database
        keyring.seal(session, aad=aad, plaintext=message)

    def first_open() -> None:
        session.info.pop(MEMO, None)  # as in a new transaction: read the key's row
        keyring.open(session, aad=aad, envelope=sealed)

    return {
        f"keyring seal+open, {name}": round_trip,
        f"keyring seal (counted), {name}": seal_only,
        f"keyring open (row confirmed), {name}": open_only,
        f"keyring seal, first in transaction, {name}": first_seal,
        f"keyring open, first in transaction, {name}": first_open,
    }, session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes")
    parser.add_argument("--postgresql", default="", help="also on this (scratch) database")
    arguments = parser.parse_args()
    iterations, rounds = arguments.iterations, arguments.rounds
    message = os.urandom(arguments.size)

    with tempfile.TemporaryDirectory() as directory:
        keyring = Keyring(LocalKeyProvider.create(Path(directory) / "root-keys"))
        url = f"sqlite:///{directory}/bench.sqlite3"
        migrations.upgrade(url)
        databases = {"SQLite": Database(url)}
        if arguments.postgresql:
            migrations.upgrade(arguments.postgresql)
            databases["PostgreSQL"] = Database(arguments.postgresql)

        dek = os.urandom(32)
        raw_cipher = AESGCM(dek)
        raw_aad = os.urandom(120)  # about the size of a message's encoded identity

        def raw() -> None:
            nonce = os.urandom(12)
            raw_cipher.decrypt(nonce, raw_cipher.encrypt(nonce, message, raw_aad), raw_aad)

        def raw_seal() -> None:
            raw_cipher.encrypt(os.urandom(12), message, raw_aad)

        cases: dict[str, Callable[[], object]] = {RAW: raw, "raw AESGCM seal only": raw_seal}
        sessions = []
        for name, database in databases.items():
            more, session = keyring_cases(name, database, keyring, message)
            cases |= more
            sessions.append(session)
        try:
            results = best_us(cases, iterations, rounds)
        finally:
            for session in sessions:
                session.rollback()
                session.close()
            for database in databases.values():
                database.dispose()

    baseline = results[RAW]
    print(
        f"keyring bench: seal+open of {len(message)} B, best of {rounds} rounds x "
        f"{iterations} ops, data key cached, one unit of work"
    )
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'case':<52}{'us/op':>8}{'+us':>9}{'x raw':>8}")
    for name, micros in results.items():
        print(f"{name:<52}{micros:>8.2f}{micros - baseline:>9.2f}{micros / baseline:>8.2f}")
    for name in databases:
        micros = results[f"keyring seal+open, {name}"]
        overhead, ratio = micros - baseline, micros / baseline
        print(
            f"{name}: goal 1 (<= {GOAL_OVERHEAD_US:.0f} us added) "
            f"{'met' if overhead <= GOAL_OVERHEAD_US else 'MISSED'} (+{overhead:.1f} us); "
            f"goal 2 (<= {GOAL_RATIO:.0f}x raw) "
            f"{'met' if ratio <= GOAL_RATIO else 'MISSED'} ({ratio:.1f}x)"
        )


if __name__ == "__main__":
    main()
