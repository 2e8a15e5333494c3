"""The usage cap of a data key under 16 concurrent writer processes (threads are in
tests/core/crypto/test_keyring.py): no version passes the cap, every sealed record opens."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from hdsapp.core.crypto.envelope import key_version_of
from tests.core.crypto.keyring_support import data_keys, message
from tests.keys.conftest import Store

WRITER = textwrap.dedent(
    """
    import os, sys, time, uuid
    from hdsapp.core.crypto.keyring import Keyring
    from hdsapp.core.crypto.providers.local import LocalKeyProvider
    from hdsapp.core.db import Database
    from tests.core.crypto.keyring_support import message

    url, key_file, group, thread, cap, count, name, go = sys.argv[1:9]
    keyring = Keyring(LocalKeyProvider(key_file), max_seals=int(cap))
    database = Database(url, pool_size=1)
    while not os.path.exists(go):
        time.sleep(0.005)
    for i in range(int(count)):
        record = f"{name}-{i}"
        aad = message(uuid.UUID(group), uuid.UUID(thread), record)
        with database.unit_of_work() as session:
            envelope = keyring.seal(session, aad=aad, plaintext=record.encode())
        print(record, envelope.hex(), flush=True)
    """
)


@pytest.mark.slow
def test_usage_cap_holds_under_16_concurrent_processes(store: Store, tmp_path: Path) -> None:
    cap, writers, per_writer = 4, 16, 5
    group, thread = uuid.uuid4(), uuid.uuid4()
    with store.database.unit_of_work() as session:
        store.keyring.create_thread_key(session, group_id=group, thread_id=thread)
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                store.database.url,
                str(store.directory / "root-keys"),
                str(group),
                str(thread),
                str(cap),
                str(per_writer),
                f"w{n}",
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        for n in range(writers)
    ]
    time.sleep(1)
    go.touch()
    sealed: dict[str, bytes] = {}
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        for line in out.splitlines():
            record, sealed_hex = line.split()
            sealed[record] = bytes.fromhex(sealed_hex)
    assert len(sealed) == writers * per_writer
    per_version: dict[int, int] = {}
    with store.database.unit_of_work() as session:
        for record, envelope in sealed.items():
            aad = message(group, thread, record)
            assert store.keyring.open(session, aad=aad, envelope=envelope) == record.encode()
            version = key_version_of(envelope)
            per_version[version] = per_version.get(version, 0) + 1
        rows = [r for r in data_keys(session) if r.thread_id is not None]
    assert max(per_version.values()) <= cap
    assert max(r.seal_count for r in rows) <= cap
    assert {r.version: r.seal_count for r in rows if r.seal_count} == per_version
    assert sum(r.status == "active" for r in rows) == 1
    assert len(rows) >= writers * per_writer // cap
