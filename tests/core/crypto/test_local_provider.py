from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.envelope import key_version_of
from hdsapp.core.crypto.errors import CryptoError, IntegrityError, KeyFileError, MissingKeyError
from hdsapp.core.crypto.providers.local import LocalKeyProvider
from tests.core.crypto.helpers import assert_clean

AD = AssociatedData(RecordKind.WRAPPED_KEK, group_id="g1", kek_version=1)
DATA_KEY = bytes(range(32))


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def key_bytes(path: Path) -> list[bytes]:
    lines = path.read_text().splitlines()[1:]
    return [base64.b64decode(line.split()[1]) for line in lines]


@pytest.mark.usefixtures("permissive_umask")
def test_created_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    LocalKeyProvider.create(path)
    assert mode(path) == 0o600
    assert path.read_text().startswith("hdsapp-root-keys v1\n1 ")
    assert [len(k) for k in key_bytes(path)] == [32]


def test_create_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    path.write_bytes(b"precious")
    with pytest.raises(KeyFileError, match="already exists"):
        LocalKeyProvider.create(path)
    assert path.read_bytes() == b"precious"


def test_create_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "root.key").symlink_to(target)
    with pytest.raises(KeyFileError):
        LocalKeyProvider.create(tmp_path / "root.key")
    assert not target.exists()


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o660, 0o644, 0o601, 0o610])
def test_refuses_a_file_readable_by_others(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "root.key"
    LocalKeyProvider.create(path)
    path.chmod(file_mode)
    with pytest.raises(KeyFileError, match="group or others") as info:
        LocalKeyProvider(path)
    assert_clean(info.value, secrets=key_bytes(path))


def test_notices_permissions_loosened_while_running(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    provider = LocalKeyProvider.create(path)
    path.chmod(0o644)
    os.utime(path, ns=(0, 0))  # a chmod alone does not change mtime
    with pytest.raises(KeyFileError):
        provider.wrap(DATA_KEY, aad=AD)


@pytest.mark.parametrize("file_mode", [0o600, 0o400])
def test_accepts_owner_only_modes(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "root.key"
    LocalKeyProvider.create(path)
    path.chmod(file_mode)
    provider = LocalKeyProvider(path)
    assert provider.unwrap(provider.wrap(DATA_KEY, aad=AD), aad=AD) == DATA_KEY


@pytest.mark.parametrize("encode", [lambda k: k, lambda k: base64.b64encode(k) + b"\n"])
def test_reads_a_single_raw_or_base64_key_as_version_1(tmp_path: Path, encode: object) -> None:
    path = tmp_path / "root.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, encode(bytes(range(32))))  # type: ignore[operator]
    os.close(fd)
    provider = LocalKeyProvider(path)
    wrapped = provider.wrap(DATA_KEY, aad=AD)
    assert key_version_of(wrapped) == 1
    assert provider.unwrap(wrapped, aad=AD) == DATA_KEY


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not base64!\n",
        base64.b64encode(bytes(16)) + b"\n",
        b"hdsapp-root-keys v1\n",
        b"hdsapp-root-keys v1\nx " + base64.b64encode(bytes(32)) + b"\n",
        b"hdsapp-root-keys v1\n1 "
        + base64.b64encode(bytes(32))
        + b"\n1 "
        + base64.b64encode(bytes(32))
        + b"\n",
        b"\xff" * 40,
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "root.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeyFileError) as info:
        LocalKeyProvider(path)
    assert_clean(info.value, secrets=[bytes(32)] if content else [])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        LocalKeyProvider(tmp_path / "absent.key")


def test_wrap_is_bound_to_the_aad(tmp_path: Path) -> None:
    provider = LocalKeyProvider.create(tmp_path / "root.key")
    wrapped = provider.wrap(DATA_KEY, aad=AD)
    other = AssociatedData(RecordKind.WRAPPED_KEK, group_id="g2", kek_version=1)
    with pytest.raises(IntegrityError) as info:
        provider.unwrap(wrapped, aad=other)
    assert_clean(info.value, secrets=[DATA_KEY, *key_bytes(tmp_path / "root.key")])


def test_rotation_keeps_old_versions_until_destroyed(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    provider = LocalKeyProvider.create(path)
    old = provider.wrap(DATA_KEY, aad=AD)
    assert provider.rotate() == 2
    assert mode(path) == 0o600
    new = provider.wrap(DATA_KEY, aad=AD)
    assert (key_version_of(old), key_version_of(new)) == (1, 2)
    assert provider.unwrap(old, aad=AD) == provider.unwrap(new, aad=AD) == DATA_KEY

    with pytest.raises(ValueError, match="current"):
        provider.destroy_version(2)
    provider.destroy_version(1)
    assert mode(path) == 0o600
    assert provider.unwrap(new, aad=AD) == DATA_KEY
    with pytest.raises(MissingKeyError, match="version 1"):
        provider.unwrap(old, aad=AD)
    with pytest.raises(MissingKeyError):
        provider.destroy_version(1)
    assert provider.rotate() == 3
    assert [p.name for p in tmp_path.iterdir()] == ["root.key"]


def test_other_processes_see_rotation_and_destruction(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    admin = LocalKeyProvider.create(path)
    worker = LocalKeyProvider(path)
    old = worker.wrap(DATA_KEY, aad=AD)
    admin.rotate()
    new = admin.wrap(DATA_KEY, aad=AD)
    assert worker.unwrap(new, aad=AD) == DATA_KEY
    assert key_version_of(worker.wrap(DATA_KEY, aad=AD)) == 2
    admin.destroy_version(1)
    with pytest.raises(MissingKeyError):
        worker.unwrap(old, aad=AD)


def test_describe_holds_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    provider = LocalKeyProvider.create(path)
    provider.rotate()
    description = provider.describe()
    assert description == {
        "kind": "local",
        "path": str(path),
        "versions": [1, 2],
        "current_version": 2,
    }
    for key in key_bytes(path):
        assert base64.b64encode(key).decode() not in repr(description)


def test_errors_are_crypto_errors() -> None:
    assert issubclass(KeyFileError, CryptoError)
