"""The PKCS#11 provider against a real SoftHSM2 token.

Each test module run makes its own token directory and ``softhsm2.conf`` (SOFTHSM2_CONF), then
``softhsm2-util --init-token --free --label hdsapp-test --pin 1234 --so-pin 5678``. Without
SoftHSM2 (``apt-get install -y softhsm2``) these tests skip, or fail when
HDS_TEST_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11.exceptions import AttributeSensitive, PKCS11Error

from hdsapp.core.crypto.aad import AssociatedData, RecordKind
from hdsapp.core.crypto.envelope import OVERHEAD_BYTES, key_version_of
from hdsapp.core.crypto.errors import IntegrityError, MissingKeyError, ProviderError
from hdsapp.core.crypto.keys import generate_data_key, unwrap_group_kek, wrap_group_kek
from hdsapp.core.crypto.providers import KeyProvider
from hdsapp.core.crypto.providers.pkcs11 import Pkcs11Config, Pkcs11KeyProvider
from tests.core.crypto.helpers import assert_clean

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
TOKEN = "hdsapp-test"
PIN = "1234"
SO_PIN = "5678"
PIN_ENV = "HDS_TEST_PKCS11_PIN"
REPO_ROOT = Path(__file__).resolve().parents[3]
AD = AssociatedData(RecordKind.WRAPPED_KEK, group_id="g1", kek_version=1)


@dataclass(frozen=True)
class SoftHsm:
    module_path: str
    conf: Path


def find_softhsm() -> str | None:
    candidates = [os.environ.get("HDS_TEST_SOFTHSM_MODULE", ""), *MODULE_CANDIDATES]
    module = next((path for path in candidates if path and Path(path).is_file()), None)
    return module if module and shutil.which("softhsm2-util") else None


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    module = find_softhsm()
    if module is None:
        message = (
            "SoftHSM2 not found (no libsofthsm2.so or softhsm2-util); "
            "install it with: apt-get update && apt-get install -y softhsm2"
        )
        if os.environ.get("HDS_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (required: HDS_TEST_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            [
                *("softhsm2-util", "--init-token", "--free", "--label", TOKEN),
                *("--pin", PIN, "--so-pin", SO_PIN),
            ],
            check=True,
            capture_output=True,
        )
        # SoftHSM reads SOFTHSM2_CONF when the library is initialised: start from a clean load.
        pkcs11.unload(module)
        yield SoftHsm(module_path=module, conf=conf)
        pkcs11.unload(module)


@pytest.fixture
def config(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> Pkcs11Config:
    monkeypatch.setenv(PIN_ENV, PIN)
    # A label per test: the token outlives the test, its keys must not leak into the next one.
    return Pkcs11Config(
        module_path=softhsm.module_path,
        token_label=TOKEN,
        key_label=f"root-{uuid.uuid4().hex[:12]}",
        pin_env=PIN_ENV,
    )


@pytest.fixture
def provider(config: Pkcs11Config) -> Iterator[Pkcs11KeyProvider]:
    with Pkcs11KeyProvider(config) as opened:
        yield opened


def test_is_a_key_provider(provider: Pkcs11KeyProvider) -> None:
    assert isinstance(provider, KeyProvider)


def test_wrap_needs_a_root_key_first(provider: Pkcs11KeyProvider) -> None:
    with pytest.raises(MissingKeyError, match="rotate"):
        provider.wrap(bytes(32), aad=AD)


def test_wrap_unwrap(provider: Pkcs11KeyProvider) -> None:
    assert provider.rotate() == 1
    data_key = generate_data_key()
    wrapped = provider.wrap(data_key, aad=AD)
    assert len(wrapped) == 32 + OVERHEAD_BYTES
    assert wrapped[0] == 0x01
    assert key_version_of(wrapped) == 1
    assert provider.unwrap(wrapped, aad=AD) == data_key
    assert provider.wrap(data_key, aad=AD) != wrapped  # fresh IV each time


def test_group_kek_through_the_token(provider: Pkcs11KeyProvider) -> None:
    provider.rotate()
    kek = generate_data_key()
    wrapped = wrap_group_kek(provider, kek, group_id="g1", kek_version=1)
    assert unwrap_group_kek(provider, wrapped, group_id="g1", kek_version=1) == kek
    with pytest.raises(IntegrityError):
        unwrap_group_kek(provider, wrapped, group_id="g2", kek_version=1)


def test_wrapped_key_is_bound_to_the_aad(provider: Pkcs11KeyProvider) -> None:
    provider.rotate()
    data_key = generate_data_key()
    wrapped = provider.wrap(data_key, aad=AD)
    for other in (
        AssociatedData(RecordKind.WRAPPED_KEK, group_id="g2", kek_version=1),
        AssociatedData(RecordKind.WRAPPED_KEK, group_id="g1", kek_version=2),
        AssociatedData(RecordKind.WRAPPED_DEK, group_id="g1", kek_version=1),
    ):
        with pytest.raises(IntegrityError) as info:
            provider.unwrap(wrapped, aad=other)
        assert_clean(info.value, secrets=[data_key, PIN.encode()])


def test_every_bit_flip_truncation_and_extension_is_rejected(
    provider: Pkcs11KeyProvider,
) -> None:
    provider.rotate()
    wrapped = provider.wrap(generate_data_key(), aad=AD)
    tampered = []
    for bit in range(len(wrapped) * 8):
        flipped = bytearray(wrapped)
        flipped[bit // 8] ^= 1 << (bit % 8)
        tampered.append(bytes(flipped))
    tampered += [wrapped[:n] for n in range(len(wrapped))]
    tampered += [wrapped + b"\x00", wrapped + wrapped]
    for candidate in tampered:
        with pytest.raises((IntegrityError, MissingKeyError)):
            provider.unwrap(candidate, aad=AD)


def test_rotation_and_destruction(provider: Pkcs11KeyProvider) -> None:
    provider.rotate()
    data_key = generate_data_key()
    old = provider.wrap(data_key, aad=AD)
    assert provider.rotate() == 2
    new = provider.wrap(data_key, aad=AD)
    assert (key_version_of(old), key_version_of(new)) == (1, 2)
    assert provider.unwrap(old, aad=AD) == provider.unwrap(new, aad=AD) == data_key
    with pytest.raises(ValueError, match="current"):
        provider.destroy_version(2)
    provider.destroy_version(1)
    with pytest.raises(MissingKeyError, match="version 1"):
        provider.unwrap(old, aad=AD)
    assert provider.unwrap(new, aad=AD) == data_key
    assert provider.describe()["versions"] == [2]


def test_other_processes_see_rotation_and_destruction(
    provider: Pkcs11KeyProvider, config: Pkcs11Config
) -> None:
    provider.rotate()
    data_key = generate_data_key()
    wrapped_here = provider.wrap(data_key, aad=AD)
    # An admin process (the CLI) rotates, wraps, and shreds version 1 while this one runs.
    script = (
        "import sys\n"
        "from hdsapp.core.crypto.aad import AssociatedData, RecordKind\n"
        "from hdsapp.core.crypto.providers.pkcs11 import Pkcs11Config, Pkcs11KeyProvider\n"
        "config = Pkcs11Config(module_path=sys.argv[1], token_label=sys.argv[2],\n"
        "                      key_label=sys.argv[3], pin_env=sys.argv[4])\n"
        "aad = AssociatedData(RecordKind.WRAPPED_KEK, group_id='g1', kek_version=1)\n"
        "with Pkcs11KeyProvider(config) as admin:\n"
        "    assert admin.describe()['versions'] == [1]\n"
        "    assert admin.rotate() == 2\n"
        "    print(admin.wrap(bytes.fromhex(sys.argv[5]), aad=aad).hex())\n"
        "    admin.destroy_version(1)\n"
    )
    result = subprocess.run(
        [
            *(sys.executable, "-c", script, config.module_path, config.token_label),
            *(config.key_label, config.pin_env, data_key.hex()),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    wrapped_elsewhere = bytes.fromhex(result.stdout.strip())
    # The provider's handle to version 1 is stale now: wrap notices and moves to version 2.
    assert key_version_of(provider.wrap(data_key, aad=AD)) == 2
    assert provider.unwrap(wrapped_elsewhere, aad=AD) == data_key
    with pytest.raises(MissingKeyError):
        provider.unwrap(wrapped_here, aad=AD)


def test_root_key_never_leaves_the_token(config: Pkcs11Config) -> None:
    with Pkcs11KeyProvider(config) as provider:
        provider.rotate()
        assert provider.describe()["current_key"] == {
            "sensitive": True,
            "extractable": False,
            "always_sensitive": True,
            "never_extractable": True,
        }
    # Ask the token directly, bypassing the provider.
    token = pkcs11.lib(config.module_path).get_token(token_label=TOKEN)
    with token.open(rw=True, user_pin=PIN) as session:
        root = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=config.key_label)
        assert root[Attribute.TOKEN] is True
        assert root[Attribute.EXTRACTABLE] is False
        with pytest.raises(AttributeSensitive):
            root[Attribute.VALUE]
        # Any: python-pkcs11 types generate_key() without the wrap methods the object has.
        wrapping: Any = session.generate_key(
            KeyType.AES, 256, capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP
        )
        with pytest.raises(PKCS11Error):
            wrapping.wrap_key(root)


def test_describe(provider: Pkcs11KeyProvider, config: Pkcs11Config) -> None:
    provider.rotate()
    description = provider.describe()
    assert description["kind"] == "pkcs11"
    assert description["token_label"] == TOKEN
    assert description["key_label"] == config.key_label
    assert description["versions"] == [1]
    assert description["current_version"] == 1
    assert PIN not in repr(description)


def test_pin_from_a_file(config: Pkcs11Config, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    file_config = Pkcs11Config(
        module_path=config.module_path,
        token_label=TOKEN,
        key_label=config.key_label,
        pin_env="HDS_TEST_UNSET_PIN",
        pin_file=pin_file,
    )
    with Pkcs11KeyProvider(file_config) as provider:
        assert provider.rotate() == 1
    pin_file.chmod(0o644)
    with pytest.raises(ProviderError, match="group or others"):
        Pkcs11KeyProvider(file_config)


def test_missing_pin(config: Pkcs11Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PIN_ENV)
    with pytest.raises(ProviderError, match=PIN_ENV):
        Pkcs11KeyProvider(config)


def test_wrong_pin(config: Pkcs11Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, "987654")
    with pytest.raises(ProviderError, match="PinIncorrect") as info:
        Pkcs11KeyProvider(config)
    assert_clean(info.value, secrets=[b"987654"])


def test_unknown_token(config: Pkcs11Config) -> None:
    absent = Pkcs11Config(
        module_path=config.module_path, token_label="no-such-token", pin_env=PIN_ENV
    )
    with pytest.raises(ProviderError, match="NoSuchToken"):
        Pkcs11KeyProvider(absent)


def test_unloadable_module(config: Pkcs11Config, tmp_path: Path) -> None:
    broken = Pkcs11Config(
        module_path=str(tmp_path / "missing.so"), token_label=TOKEN, pin_env=PIN_ENV
    )
    with pytest.raises(ProviderError, match="cannot load"):
        Pkcs11KeyProvider(broken)


def test_one_provider_per_token_per_process(
    provider: Pkcs11KeyProvider, config: Pkcs11Config
) -> None:
    with pytest.raises(ProviderError, match="one provider per token"):
        Pkcs11KeyProvider(config)
