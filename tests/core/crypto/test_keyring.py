"""The key store (hdsapp.core.crypto.keyring) on SQLite and PostgreSQL: round trips, binding of
ciphertexts and wrapped keys to their place, the usage cap under concurrent writers, streaming,
blind indexes, shredding and the cross-process check."""

from __future__ import annotations

import datetime as dt
import io
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hdsapp.core.actor import system_actor
from hdsapp.core.crypto import blind_index
from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.chunks import open_chunks, read_sealed_chunks
from hdsapp.core.crypto.envelope import OVERHEAD_BYTES, key_version_of, open_envelope
from hdsapp.core.crypto.errors import CryptoError, IntegrityError, MissingKeyError
from hdsapp.core.crypto.keyring import Keyring, KeyShredded
from hdsapp.core.crypto.keys import unwrap_group_kek, unwrap_thread_dek
from hdsapp.core.crypto.providers.local import LocalKeyProvider
from hdsapp.core.db import Database
from tests.core.crypto.helpers import assert_clean
from tests.core.crypto.keyring_support import data_keys, local_keyring, message


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return local_keyring(tmp_path)


def ids() -> tuple[uuid.UUID, uuid.UUID]:
    return uuid.uuid4(), uuid.uuid4()


def test_round_trip_thread_and_group_keys(keyring: Keyring, database: Database) -> None:
    group, thread = ids()
    with database.unit_of_work() as session:
        keyring.create_group_keys(session, group_id=group)
        keyring.create_thread_key(session, group_id=group, thread_id=thread)
        in_thread = keyring.seal(session, aad=message(group, thread), plaintext=b"ECG attached")
        identity = keyring.seal(session, aad=message(group, None, "p1"), plaintext=b"{}")
    with database.unit_of_work() as session:
        assert keyring.open(session, aad=message(group, thread), envelope=in_thread) == (
            b"ECG attached"
        )
        assert keyring.open(session, aad=message(group, None, "p1"), envelope=identity) == b"{}"
        rows = data_keys(session)
    assert {(r.thread_id is None, r.version, r.seal_count, r.status) for r in rows} == {
        (True, 1, 1, "active"),
        (False, 1, 1, "active"),
    }
    assert key_version_of(in_thread) == 1


def test_keys_are_created_on_first_use_and_creation_is_idempotent(
    keyring: Keyring, database: Database
) -> None:
    group, thread = ids()
    with database.unit_of_work() as session:
        envelope = keyring.seal(session, aad=message(group, thread), plaintext=b"x")
        keyring.create_group_keys(session, group_id=group)
        keyring.create_thread_key(session, group_id=group, thread_id=thread)
    with database.unit_of_work() as session:
        keyring.create_group_keys(session, group_id=group)
        assert keyring.open(session, aad=message(group, thread), envelope=envelope) == b"x"
        assert len(data_keys(session)) == 2  # the group's own key and the thread's
        kek_rows = session.execute(sa.text("SELECT count(*) FROM group_key")).scalar_one()
        assert kek_rows == 1


def test_a_rolled_back_unit_of_work_takes_its_keys_with_it(
    keyring: Keyring, database: Database
) -> None:
    group, thread = ids()

    def failing_use_case() -> None:
        with database.unit_of_work() as session:
            keyring.seal(session, aad=message(group, thread), plaintext=b"x")
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        failing_use_case()
    with database.unit_of_work() as session:
        assert data_keys(session) == []
        envelope = keyring.seal(session, aad=message(group, thread), plaintext=b"y")
    with database.unit_of_work() as session:
        assert keyring.open(session, aad=message(group, thread), envelope=envelope) == b"y"


def test_a_ciphertext_moved_to_another_record_thread_or_group_fails(
    keyring: Keyring, database: Database
) -> None:
    group, thread = ids()
    other_group, other_thread = ids()
    with database.unit_of_work() as session:
        envelope = keyring.seal(session, aad=message(group, thread, "m1"), plaintext=b"secret")
        keyring.seal(session, aad=message(group, other_thread, "m1"), plaintext=b"other")
        keyring.seal(session, aad=message(other_group, None), plaintext=b"other")
        identity = keyring.seal(session, aad=message(group, None, "p1"), plaintext=b"id")
    with database.unit_of_work() as session:
        for aad in (
            message(group, thread, "m2"),  # another row
            AssociatedData(
                RecordKind.ATTACHMENT, group_id=str(group), thread_id=str(thread), record_id="m1"
            ),
        ):
            with pytest.raises(IntegrityError):
                keyring.open(session, aad=aad, envelope=envelope)
        with pytest.raises(CryptoError):  # another thread of the group: another key
            keyring.open(session, aad=message(group, other_thread, "m1"), envelope=envelope)
        with pytest.raises(CryptoError):  # the same thread named in another group
            keyring.open(session, aad=message(other_group, thread, "m1"), envelope=envelope)
        with pytest.raises(CryptoError):  # a thread's ciphertext as the group's own record
            keyring.open(session, aad=message(group, None, "m1"), envelope=envelope)
        with pytest.raises(CryptoError):  # a group's record opened in another group
            keyring.open(session, aad=message(other_group, None, "p1"), envelope=identity)
        tampered = bytearray(envelope)
        tampered[-1] ^= 1
        with pytest.raises(IntegrityError) as info:
            keyring.open(session, aad=message(group, thread, "m1"), envelope=bytes(tampered))
        assert_clean(info.value, secrets=[b"secret"])
        with pytest.raises(MissingKeyError, match="version 9"):
            keyring.open(
                session, aad=message(group, thread, "m1"), envelope=_with_version(envelope, 9)
            )


def _with_version(envelope: bytes, version: int) -> bytes:
    return envelope[:1] + version.to_bytes(4, "big") + envelope[5:]


def test_a_wrapped_key_pasted_onto_another_row_is_rejected(
    tmp_path: Path, database: Database
) -> None:
    group, thread = ids()
    other_group, other_thread = ids()
    keyring = local_keyring(tmp_path)
    with database.unit_of_work() as session:
        envelope = keyring.seal(session, aad=message(group, thread), plaintext=b"secret")
        keyring.seal(session, aad=message(group, other_thread), plaintext=b"x")
        keyring.seal(session, aad=message(other_group, None), plaintext=b"x")
    cases = [
        # the other thread's DEK pasted onto this thread's row
        "UPDATE data_key SET wrapped = (SELECT wrapped FROM data_key WHERE owner_id = :other)"
        " WHERE owner_id = :thread",
        # the other group's KEK pasted onto this group's row
        "UPDATE group_key SET wrapped = (SELECT wrapped FROM group_key WHERE group_id = :og)"
        " WHERE group_id = :group",
    ]
    for statement in cases:
        with database.unit_of_work() as session:
            original = {
                table: session.execute(sa.text(f"SELECT * FROM {table}")).all()
                for table in ("data_key", "group_key")
            }
            session.execute(
                sa.text(statement),
                {
                    "other": _db_uuid(database, other_thread),
                    "thread": _db_uuid(database, thread),
                    "og": _db_uuid(database, other_group),
                    "group": _db_uuid(database, group),
                },
            )
        fresh = local_keyring(tmp_path)  # nothing cached
        with database.unit_of_work() as session, pytest.raises(IntegrityError):
            fresh.open(session, aad=message(group, thread), envelope=envelope)
        with database.unit_of_work() as session:
            for table, rows in original.items():
                session.execute(sa.text(f"DELETE FROM {table}"))
                for row in rows:
                    columns = ", ".join(row._fields)
                    values = ", ".join(f":{c}" for c in row._fields)
                    session.execute(
                        sa.text(f"INSERT INTO {table} ({columns}) VALUES ({values})"),
                        row._asdict(),
                    )
        with database.unit_of_work() as session:
            assert (
                local_keyring(tmp_path).open(session, aad=message(group, thread), envelope=envelope)
                == b"secret"
            )


def _db_uuid(database: Database, value: uuid.UUID) -> str:
    return value.hex if database.backend == "sqlite" else str(value)


def test_no_key_material_in_clear_in_the_database(tmp_path: Path, database: Database) -> None:
    group, thread = ids()
    keyring = local_keyring(tmp_path)
    with database.unit_of_work() as session:
        keyring.seal(session, aad=message(group, thread), plaintext=b"x")
        keyring.blind_index(session, group_id=group, purpose="ins", value="1.2.250|123")
    provider = LocalKeyProvider(tmp_path / "root-keys")
    with database.unit_of_work() as session:
        kek_row = session.execute(sa.text("SELECT wrapped FROM group_key")).one()
        kek = unwrap_group_kek(provider, kek_row.wrapped, group_id=str(group), kek_version=1)
        dek_row = session.execute(
            sa.text("SELECT wrapped FROM data_key WHERE thread_id IS NOT NULL")
        ).one()
        dek = unwrap_thread_dek(
            kek, dek_row.wrapped, group_id=str(group), thread_id=str(thread), dek_version=1
        )
        everything = b"".join(
            bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
            for table in ("group_key", "data_key", "blind_index_key", "key_root_version")
            for row in session.execute(sa.text(f"SELECT * FROM {table}"))
            for value in row
        )
    root = (tmp_path / "root-keys").read_text().split()[-1]
    for secret in (kek, dek):
        assert secret not in everything
        assert secret.hex().encode() not in everything
    assert root.encode() not in everything
    if database.backend == "sqlite":
        path = Path(database.url.removeprefix("sqlite:///"))
        files = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert kek not in files
        assert dek not in files


def test_usage_cap_moves_to_a_new_version_and_old_ones_keep_opening(
    tmp_path: Path, database: Database
) -> None:
    keyring = local_keyring(tmp_path, max_seals=3)
    group, thread = ids()
    sealed = []
    with database.unit_of_work() as session:
        for i in range(10):
            aad = message(group, thread, i)
            sealed.append((aad, keyring.seal(session, aad=aad, plaintext=b"%d" % i)))
    with database.unit_of_work() as session:
        rows = [r for r in data_keys(session) if r.thread_id is not None]
        assert [(r.version, r.seal_count, r.status) for r in rows] == [
            (1, 3, "retired"),
            (2, 3, "retired"),
            (3, 3, "retired"),
            (4, 1, "active"),
        ]
        assert [key_version_of(e) for _, e in sealed] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
        for i, (aad, envelope) in enumerate(sealed):
            assert keyring.open(session, aad=aad, envelope=envelope) == b"%d" % i


@pytest.mark.slow
def test_usage_cap_holds_under_16_concurrent_writers(tmp_path: Path, database: Database) -> None:
    cap, writers, per_writer = 5, 16, 6
    keyring = local_keyring(tmp_path, max_seals=cap)
    group, thread = ids()
    with database.unit_of_work() as session:
        keyring.create_thread_key(session, group_id=group, thread_id=thread)
    sealed: list[tuple[AssociatedData, bytes]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)
    lock = threading.Lock()

    def write(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                aad = message(group, thread, f"{n}-{i}")
                # Every writer its own unit of work, as concurrent requests would.
                with database.unit_of_work() as session:
                    envelope = keyring.seal(session, aad=aad, plaintext=str(aad.record_id).encode())
                with lock:
                    sealed.append((aad, envelope))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(sealed) == writers * per_writer
    with database.unit_of_work() as session:
        rows = [r for r in data_keys(session) if r.thread_id is not None]
        assert max(r.seal_count for r in rows) <= cap
        assert sum(r.seal_count for r in rows) == writers * per_writer
        assert sum(r.status == "active" for r in rows) == 1
        per_version: dict[int, int] = {}
        for aad, envelope in sealed:
            assert keyring.open(session, aad=aad, envelope=envelope) == str(aad.record_id).encode()
            version = key_version_of(envelope)
            per_version[version] = per_version.get(version, 0) + 1
        assert max(per_version.values()) <= cap
        assert per_version == {r.version: r.seal_count for r in rows if r.seal_count}


def test_chunks_round_trip_across_key_versions(tmp_path: Path, database: Database) -> None:
    keyring = local_keyring(tmp_path, max_seals=2)
    group, thread = ids()
    aad = AssociatedData(
        RecordKind.ATTACHMENT, group_id=str(group), thread_id=str(thread), record_id="a1"
    )
    data = bytes(range(256)) * 20  # 5120 bytes: 5 chunks of 1 KiB, then an empty last one
    with database.unit_of_work() as session:
        envelopes = list(
            keyring.seal_chunks(
                session, aad=aad, plaintext=[data[:1000], data[1000:]], chunk_size=1024
            )
        )
    assert [len(e) for e in envelopes] == [1024 + OVERHEAD_BYTES] * 5
    assert [key_version_of(e) for e in envelopes] == [1, 1, 2, 2, 3]
    with database.unit_of_work() as session:
        assert b"".join(keyring.open_chunks(session, aad=aad, envelopes=envelopes)) == data
        # The same layout as core.crypto.chunks: a stored blob splits back into envelopes.
        blob = io.BytesIO(b"".join(envelopes))
        assert list(read_sealed_chunks(blob, chunk_size=1024)) == envelopes
        for broken in (envelopes[::-1], envelopes[:-1], [*envelopes, envelopes[-1]]):
            with pytest.raises(IntegrityError):
                b"".join(keyring.open_chunks(session, aad=aad, envelopes=broken))


def test_thread_data_keys_are_what_the_pure_layer_expects(
    tmp_path: Path, database: Database
) -> None:
    keyring = local_keyring(tmp_path)
    group, thread = ids()
    with database.unit_of_work() as session:
        envelope = keyring.seal(session, aad=message(group, thread), plaintext=b"interop")
        row = session.execute(
            sa.text("SELECT wrapped FROM data_key WHERE thread_id IS NOT NULL")
        ).one()
        kek_row = session.execute(sa.text("SELECT wrapped FROM group_key")).one()
    provider = LocalKeyProvider(tmp_path / "root-keys")
    kek = unwrap_group_kek(provider, kek_row.wrapped, group_id=str(group), kek_version=1)
    dek = unwrap_thread_dek(
        kek, row.wrapped, group_id=str(group), thread_id=str(thread), dek_version=1
    )
    assert open_envelope(AESGCM(dek), envelope, aad=message(group, thread)) == b"interop"
    with database.unit_of_work() as session:
        sealed = list(
            keyring.seal_chunks(session, aad=message(group, thread, "a"), plaintext=[b"abc"])
        )
    assert b"".join(open_chunks(dek, sealed, aad=message(group, thread, "a"))) == b"abc"


def test_blind_indexes_are_per_group_and_normalised(keyring: Keyring, database: Database) -> None:
    group, other = ids()
    with database.unit_of_work() as session:
        first = keyring.blind_index(
            session, group_id=group, purpose="ins", value="1.2.250.1.213.1.4.8|1 84 12 2a 004 005"
        )
        same = keyring.blind_index(
            session,
            group_id=group,
            purpose="ins",
            value="urn:oid:1.2.250.1.213.1.4.8|18412 2A004005",
        )
        elsewhere = keyring.blind_index(
            session, group_id=other, purpose="ins", value="1.2.250.1.213.1.4.8|184122A004005"
        )
        name = keyring.blind_index(
            session, group_id=group, purpose="name-birthdate", value="D'Arc-Lefèvre|1984-12-02"
        )
        same_name = keyring.blind_index(
            session, group_id=group, purpose="name-birthdate", value="darc lefevre|1984-12-02"
        )
        for purpose, value in (("ins", "no separator"), ("name-birthdate", "x|1984-13-02")):
            with pytest.raises(ValueError):  # noqa: PT011
                keyring.blind_index(session, group_id=group, purpose=purpose, value=value)
        with pytest.raises(ValueError, match="purpose"):
            keyring.blind_index(session, group_id=group, purpose="email", value="a|b")
    assert first == same != elsewhere
    assert name == same_name != first
    assert len(first) == 32
    # The index key is the group's own, not derived from anything else stored.
    with database.unit_of_work() as session:
        again = keyring.blind_index(
            session, group_id=group, purpose="name-birthdate", value="DARC LEFEVRE|1984-12-02"
        )
    assert again == name
    assert name != blind_index.name_birthdate_index(
        bytes(32), family_name="darc lefevre", birth_date=dt.date(1984, 12, 2)
    )


def test_associated_data_that_cannot_pick_a_key_is_refused(
    keyring: Keyring, database: Database
) -> None:
    group, thread = ids()
    with database.unit_of_work() as session:
        for aad in (
            AssociatedData(RecordKind.MESSAGE, thread_id=str(thread)),
            AssociatedData(RecordKind.MESSAGE, group_id=str(group).upper()),
            AssociatedData(RecordKind.MESSAGE, group_id="group-1"),
            AssociatedData(RecordKind.WRAPPED_DEK, group_id=str(group)),
            AssociatedData(RecordKind.MESSAGE, group_id=str(group), dek_version=1),
            AssociatedData(RecordKind.MESSAGE, group_id=str(group)).for_chunk(0, last=True),
        ):
            with pytest.raises(ValueError):  # noqa: PT011
                keyring.seal(session, aad=aad, plaintext=b"x")


def test_a_thread_keyed_in_one_group_cannot_be_used_from_another(
    keyring: Keyring, database: Database
) -> None:
    group, thread = ids()
    other = uuid.uuid4()
    with database.unit_of_work() as session:
        keyring.create_thread_key(session, group_id=group, thread_id=thread)
    with database.unit_of_work() as session:
        with pytest.raises(IntegrityError, match="another group"):
            keyring.seal(session, aad=message(other, thread), plaintext=b"x")
        with pytest.raises(IntegrityError, match="another group"):
            keyring.create_thread_key(session, group_id=other, thread_id=thread)


def test_shredded_thread_is_unreadable_others_stay_readable(
    tmp_path: Path, database: Database
) -> None:
    keyring = local_keyring(tmp_path, max_seals=2)
    other_process = local_keyring(tmp_path)  # its own cache, as another process has
    group, thread = ids()
    other_thread = uuid.uuid4()
    with database.unit_of_work() as session:
        doomed = [
            keyring.seal(session, aad=message(group, thread, i), plaintext=b"x") for i in range(3)
        ]
        kept = keyring.seal(session, aad=message(group, other_thread), plaintext=b"kept")
        identity = keyring.seal(session, aad=message(group, None), plaintext=b"id")
    with database.unit_of_work() as session:  # the other process has the keys cached
        assert (
            other_process.open(session, aad=message(group, thread, 0), envelope=doomed[0]) == b"x"
        )
    with database.unit_of_work() as session:
        result = keyring.shred_thread(
            session, actor=system_actor(), thread_id=thread, reason="retention period over"
        )
        assert (result.key_versions, result.already, result.group_id) == (2, False, group)
        # Within the shredding unit of work already.
        with pytest.raises(KeyShredded):
            keyring.open(session, aad=message(group, thread, 0), envelope=doomed[0])
    for ring in (keyring, other_process):
        with database.unit_of_work() as session:
            for i, envelope in enumerate(doomed):
                with pytest.raises(KeyShredded):
                    ring.open(session, aad=message(group, thread, i), envelope=envelope)
            assert ring.open(session, aad=message(group, other_thread), envelope=kept) == b"kept"
            assert ring.open(session, aad=message(group, None), envelope=identity) == b"id"
    with database.unit_of_work() as session:
        with pytest.raises(KeyShredded):
            keyring.seal(session, aad=message(group, thread, 9), plaintext=b"new")
        with pytest.raises(KeyShredded):
            keyring.create_thread_key(session, group_id=group, thread_id=thread)
        again = keyring.shred_thread(
            session, actor=system_actor(), thread_id=thread, reason="twice"
        )
        assert again.already
        with pytest.raises(LookupError, match="no key"):
            keyring.shred_thread(
                session, actor=system_actor(), thread_id=uuid.uuid4(), reason="unknown"
            )
        ledger = session.execute(sa.text("SELECT reason, actor_kind FROM shred_ledger")).all()
        assert [tuple(r) for r in ledger] == [("retention period over", "system")]
        assert not session.execute(
            sa.text("SELECT 1 FROM data_key WHERE owner_id = :t"),
            {"t": _db_uuid(database, thread)},
        ).first()


def test_the_shred_ledger_is_append_only(tmp_path: Path, database: Database) -> None:
    keyring = local_keyring(tmp_path)
    group, thread = ids()
    with database.unit_of_work() as session:
        keyring.seal(session, aad=message(group, thread), plaintext=b"x")
    with database.unit_of_work() as session:
        keyring.shred_thread(session, actor=system_actor(), thread_id=thread, reason="erasure")
    for statement in ("UPDATE shred_ledger SET reason = 'nothing'", "DELETE FROM shred_ledger"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):  # noqa: SIM117
            with database.unit_of_work() as session:
                session.execute(sa.text(statement))
    if database.backend == "postgresql":
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):  # noqa: SIM117
            with database.unit_of_work() as session:
                session.execute(sa.text("TRUNCATE shred_ledger"))


def test_shredding_a_group_takes_every_key_of_it(tmp_path: Path, database: Database) -> None:
    keyring = local_keyring(tmp_path)
    group, thread = ids()
    other_group = uuid.uuid4()
    with database.unit_of_work() as session:
        in_thread = keyring.seal(session, aad=message(group, thread), plaintext=b"x")
        keep = keyring.seal(session, aad=message(other_group, None), plaintext=b"kept")
    with database.unit_of_work() as session:
        result = keyring.shred_group(
            session, actor=system_actor(), group_id=group, reason="group dissolved"
        )
        assert result.key_versions == 4  # thread DEK, group DEK, KEK, blind-index key
    with database.unit_of_work() as session:
        with pytest.raises(KeyShredded):
            keyring.open(session, aad=message(group, thread), envelope=in_thread)
        for call in (
            lambda: keyring.seal(session, aad=message(group, uuid.uuid4()), plaintext=b"x"),
            lambda: keyring.blind_index(session, group_id=group, purpose="ins", value="a|b"),
            lambda: keyring.create_group_keys(session, group_id=group),
        ):
            with pytest.raises(KeyShredded):
                call()
        assert keyring.open(session, aad=message(other_group, None), envelope=keep) == b"kept"


def test_seal_in_a_session_is_bound_to_the_unit_of_work(
    keyring: Keyring, database: Database
) -> None:
    # The keyring never commits: a session it used is still in its transaction afterwards.
    group, thread = ids()
    with database.session() as session:
        keyring.seal(session, aad=message(group, thread), plaintext=b"x")
        assert session.in_transaction()
        session.rollback()
    with database.unit_of_work() as session:
        assert data_keys(session) == []
