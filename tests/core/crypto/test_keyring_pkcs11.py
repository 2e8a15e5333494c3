"""The key store with its root key in a PKCS#11 token (SoftHSM2, set up as in
test_pkcs11_provider.py): provisioning from settings (PIN from a 0600 file), round trips, root
rotation and destruction of the old version in the token, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdsapp.config import Settings
from hdsapp.core.actor import system_actor
from hdsapp.core.crypto.errors import ProviderError
from hdsapp.core.crypto.keyring import Keyring, ProviderSpec, ensure_root_key
from hdsapp.core.db import Database
from hdsapp.keys import service
from tests.core.crypto.keyring_support import message
from tests.core.crypto.test_pkcs11_provider import (  # noqa: F401 - the module's token fixture
    PIN,
    TOKEN,
    SoftHsm,
    softhsm,
)


@pytest.fixture
def pkcs11_settings(softhsm: SoftHsm, tmp_path: Path, database_url: str) -> Settings:  # noqa: F811
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    return Settings.model_validate(
        {
            "data_dir": tmp_path,
            "database_url": database_url,
            "key_provider": "pkcs11",
            "pkcs11_module": softhsm.module_path,
            "pkcs11_token_label": TOKEN,
            # A label per test: the token outlives the test, its keys must not leak.
            "pkcs11_key_label": f"root-{uuid.uuid4().hex[:12]}",
            "pkcs11_pin_file": pin_file,
        }
    )


@pytest.fixture
def keyring(pkcs11_settings: Settings) -> Iterator[Keyring]:
    assert ensure_root_key(pkcs11_settings) == (
        f"pkcs11:{TOKEN}/{pkcs11_settings.pkcs11_key_label}"
    )
    assert ensure_root_key(pkcs11_settings) is None  # already there
    ring = Keyring.from_settings(pkcs11_settings)
    yield ring
    ring.close()


def test_round_trip_with_the_root_key_in_the_token(keyring: Keyring, database: Database) -> None:
    group, thread = uuid.uuid4(), uuid.uuid4()
    with database.unit_of_work() as session:
        envelope = keyring.seal(session, aad=message(group, thread), plaintext=b"via the HSM")
        index = keyring.blind_index(session, group_id=group, purpose="ins", value="1.2|3")
    keyring.forget_all()
    with database.unit_of_work() as session:
        assert keyring.open(session, aad=message(group, thread), envelope=envelope) == (
            b"via the HSM"
        )
        assert keyring.blind_index(session, group_id=group, purpose="ins", value="1.2|3") == index
        assert list(keyring.unwrap_check(session)) == []
    description = keyring.root().describe()
    assert description["kind"] == "pkcs11"
    assert description["current_key"] == {
        "sensitive": True,
        "extractable": False,
        "always_sensitive": True,
        "never_extractable": True,
    }


def test_root_rotation_and_destruction_in_the_token(keyring: Keyring, database: Database) -> None:
    groups = [uuid.uuid4() for _ in range(3)]
    sealed = []
    with database.unit_of_work() as session:
        for group in groups:
            aad = message(group, uuid.uuid4())
            sealed.append((aad, keyring.seal(session, aad=aad, plaintext=str(group).encode())))
    report = service.rotate_root(
        database=database, keyring=keyring, actor=system_actor(), destroy_old=True, batch=2
    )
    assert (report.version, report.rewrapped, report.destroyed) == (2, 6, [1])
    assert keyring.root().describe()["versions"] == [2]
    keyring.forget_all()
    with database.unit_of_work() as session:
        for aad, envelope in sealed:
            assert keyring.open(session, aad=aad, envelope=envelope) == str(aad.group_id).encode()
        assert list(keyring.unwrap_check(session)) == []


def test_pin_only_from_a_private_file(pkcs11_settings: Settings) -> None:
    assert pkcs11_settings.pkcs11_pin_file is not None
    pkcs11_settings.pkcs11_pin_file.chmod(0o644)
    with pytest.raises(ProviderError, match="accessible by group or others") as info:
        ProviderSpec.from_settings(pkcs11_settings).open()
    assert PIN not in str(info.value)


def test_the_command_line_with_the_token(pkcs11_settings: Settings, database: Database) -> None:
    env = {
        **os.environ,
        "HDS_DATA_DIR": str(pkcs11_settings.data_dir),
        "HDS_DATABASE_URL": pkcs11_settings.effective_database_url,
        "HDS_KEY_PROVIDER": "pkcs11",
        "HDS_PKCS11_MODULE": pkcs11_settings.pkcs11_module,
        "HDS_PKCS11_TOKEN_LABEL": TOKEN,
        "HDS_PKCS11_KEY_LABEL": pkcs11_settings.pkcs11_key_label,
        "HDS_PKCS11_PIN_FILE": str(pkcs11_settings.pkcs11_pin_file),
    }

    def hdsapp(*args: str) -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-m", "hdsapp", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert PIN not in result.stdout + result.stderr
        data: dict[str, object] = json.loads(result.stdout)
        return data

    init = hdsapp("init")
    assert f"pkcs11:{TOKEN}/{pkcs11_settings.pkcs11_key_label}" in init["created_secrets"]  # type: ignore[operator]
    with database.unit_of_work() as session:
        keyring = Keyring.from_settings(pkcs11_settings)
        try:
            group = uuid.uuid4()
            aad = message(group, uuid.uuid4())
            envelope = keyring.seal(session, aad=aad, plaintext=b"x")
        finally:
            keyring.close()
    rotated = hdsapp("keys", "rotate", "--root", "--destroy-old")
    assert rotated["rotated"] == [
        {"scope": "root", "group_id": None, "version": 2, "rewrapped": 2, "destroyed": [1]}
    ]
    status = hdsapp("keys", "status")
    provider = status["provider"]
    assert isinstance(provider, dict)
    assert (provider["kind"], provider["versions"]) == ("pkcs11", [2])
    assert hdsapp("keys", "check") == {"ok": True, "problems": []}
    keyring = Keyring.from_settings(pkcs11_settings)
    try:
        with database.unit_of_work() as session:
            assert keyring.open(session, aad=aad, envelope=envelope) == b"x"
    finally:
        keyring.close()
