from __future__ import annotations

from pathlib import Path

import pytest

from hdsapp.core.crypto.envelope import key_lookup, key_version_of
from hdsapp.core.crypto.errors import IntegrityError, MissingKeyError
from hdsapp.core.crypto.keys import (
    generate_data_key,
    rewrap_group_kek,
    rewrap_thread_dek,
    unwrap_group_kek,
    unwrap_thread_dek,
    wrap_group_kek,
    wrap_thread_dek,
)
from hdsapp.core.crypto.providers import KeyProvider
from hdsapp.core.crypto.providers.local import LocalKeyProvider


@pytest.fixture
def provider(tmp_path: Path) -> LocalKeyProvider:
    return LocalKeyProvider.create(tmp_path / "root.key")


def test_data_keys_are_fresh_256_bit() -> None:
    keys = {generate_data_key() for _ in range(100)}
    assert len(keys) == 100
    assert {len(k) for k in keys} == {32}


def test_local_provider_is_a_key_provider(provider: LocalKeyProvider) -> None:
    assert isinstance(provider, KeyProvider)


def test_group_kek_round_trip(provider: LocalKeyProvider) -> None:
    kek = generate_data_key()
    wrapped = wrap_group_kek(provider, kek, group_id="g1", kek_version=1)
    assert unwrap_group_kek(provider, wrapped, group_id="g1", kek_version=1) == kek


@pytest.mark.parametrize(("group_id", "kek_version"), [("g2", 1), ("g1", 2)])
def test_group_kek_is_bound_to_group_and_version(
    provider: LocalKeyProvider, group_id: str, kek_version: int
) -> None:
    wrapped = wrap_group_kek(provider, generate_data_key(), group_id="g1", kek_version=1)
    with pytest.raises(IntegrityError):
        unwrap_group_kek(provider, wrapped, group_id=group_id, kek_version=kek_version)


def test_group_kek_survives_root_rotation(provider: LocalKeyProvider) -> None:
    kek = generate_data_key()
    wrapped = wrap_group_kek(provider, kek, group_id="g1", kek_version=1)
    assert provider.rotate() == 2
    rewrapped = rewrap_group_kek(provider, wrapped, group_id="g1", kek_version=1)
    assert key_version_of(wrapped) == 1
    assert key_version_of(rewrapped) == 2
    provider.destroy_version(1)
    assert unwrap_group_kek(provider, rewrapped, group_id="g1", kek_version=1) == kek
    with pytest.raises(MissingKeyError):
        unwrap_group_kek(provider, wrapped, group_id="g1", kek_version=1)


KEK = bytes(range(32))
DEK = bytes(range(32, 64))


def wrapped_dek() -> bytes:
    return wrap_thread_dek(KEK, DEK, group_id="g1", thread_id="t1", kek_version=3, dek_version=1)


def test_thread_dek_round_trip() -> None:
    wrapped = wrapped_dek()
    assert key_version_of(wrapped) == 3
    assert unwrap_thread_dek(KEK, wrapped, group_id="g1", thread_id="t1", dek_version=1) == DEK
    lookup = key_lookup({3: KEK})
    assert unwrap_thread_dek(lookup, wrapped, group_id="g1", thread_id="t1", dek_version=1) == DEK


@pytest.mark.parametrize(
    ("group_id", "thread_id", "dek_version"),
    [("g1", "t2", 1), ("g2", "t1", 1), ("g1", "t1", 2)],
    ids=["other-thread", "other-group", "other-dek-version"],
)
def test_thread_dek_pasted_elsewhere_is_rejected(
    group_id: str, thread_id: str, dek_version: int
) -> None:
    with pytest.raises(IntegrityError):
        unwrap_thread_dek(
            KEK, wrapped_dek(), group_id=group_id, thread_id=thread_id, dek_version=dek_version
        )


def test_thread_dek_under_the_wrong_kek_is_rejected() -> None:
    with pytest.raises(IntegrityError):
        unwrap_thread_dek(bytes(32), wrapped_dek(), group_id="g1", thread_id="t1", dek_version=1)


def test_thread_dek_kek_rotation() -> None:
    new_kek = generate_data_key()
    moved = rewrap_thread_dek(
        KEK, new_kek, wrapped_dek(), group_id="g1", thread_id="t1", dek_version=1, new_kek_version=4
    )
    assert key_version_of(moved) == 4
    lookup = key_lookup({4: new_kek})
    assert unwrap_thread_dek(lookup, moved, group_id="g1", thread_id="t1", dek_version=1) == DEK


def test_kek_version_in_header_cannot_be_relabelled() -> None:
    relabelled = bytearray(wrapped_dek())
    relabelled[1:5] = (4).to_bytes(4, "big")
    with pytest.raises(IntegrityError):
        unwrap_thread_dek(KEK, bytes(relabelled), group_id="g1", thread_id="t1", dek_version=1)


@pytest.mark.parametrize("bad", [b"", bytes(16), bytes(33)])
def test_only_256_bit_keys_are_wrapped(provider: LocalKeyProvider, bad: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_group_kek(provider, bad, group_id="g1", kek_version=1)
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_thread_dek(KEK, bad, group_id="g1", thread_id="t1", kek_version=3, dek_version=1)
