"""``local`` provider: the root key lives in a file on the host (the embedded default).

File format (text, created mode 0600 by ``LocalKeyProvider.create``)::

    hdsapp-root-keys v1
    1 <base64 of 32 random bytes>
    2 <base64 of 32 random bytes>

one line per root version; the highest is current. ``rotate`` appends a version, old versions
keep unwrapping until ``destroy_version`` removes their line. A file of exactly 32 raw bytes, or
holding a single base64 line, is read as version 1 (keys made by other tools).

Every write goes to a new 0600 file replaced atomically over the old one. The file is re-read when
it changes, so a rotation or destruction made by another process (``hdsapp`` CLI) applies here at
the next wrap/unwrap. Destroying a line does not scrub old copies of the file (backups, journaling
file systems, SSD blocks): crypto-shredding a root version also means dropping those.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import threading
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hdsapp.core.crypto.aad import AssociatedData
from hdsapp.core.crypto.envelope import KEY_BYTES, Key, open_envelope, seal
from hdsapp.core.crypto.errors import KeyFileError, MissingKeyError

_MAGIC = "hdsapp-root-keys v1"


class LocalKeyProvider:
    """Root key versions read from a 0600 file. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[int, AESGCM] = {}
        self._refresh()

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        """Create a new key file holding version 1; refuses to overwrite an existing file."""
        _write_new(Path(path), {1: os.urandom(KEY_BYTES)})
        return cls(path)

    def wrap(self, plaintext_key: bytes, *, aad: AssociatedData) -> bytes:
        with self._lock:
            self._refresh()
            version = max(self._keys)
            key = self._keys[version]
        return seal(key, plaintext_key, key_version=version, aad=aad)

    def unwrap(self, wrapped: bytes, *, aad: AssociatedData) -> bytes:
        with self._lock:
            self._refresh()
            keys = self._keys  # replaced, never mutated, by _refresh

        def lookup(version: int) -> Key:
            try:
                return keys[version]
            except KeyError:
                raise MissingKeyError(f"root key version {version} is not available") from None

        return open_envelope(lookup, wrapped, aad=aad)

    def rotate(self) -> int:
        with self._lock:
            raw = _read(self._path)[1]
            version = max(raw) + 1
            raw[version] = os.urandom(KEY_BYTES)
            _replace(self._path, raw)
            self._refresh()
            return version

    def destroy_version(self, version: int) -> None:
        """Remove a root version from the file: what it wrapped can no longer be unwrapped."""
        with self._lock:
            raw = _read(self._path)[1]
            if version not in raw:
                raise MissingKeyError(f"root key version {version} is not available")
            if version == max(raw):
                raise ValueError("cannot destroy the current root version; rotate first")
            del raw[version]
            _replace(self._path, raw)
            self._refresh()

    def describe(self) -> dict[str, object]:
        with self._lock:
            self._refresh()
            versions = sorted(self._keys)
        return {
            "kind": "local",
            "path": str(self._path),
            "versions": versions,
            "current_version": versions[-1],
        }

    def _refresh(self) -> None:
        # One stat per call keeps every process in step with rotations made elsewhere.
        try:
            st = self._path.stat()
        except OSError as exc:
            raise KeyFileError(f"cannot read root key file {self._path}") from exc
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            stamp, raw = _read(self._path)
            self._keys = {version: AESGCM(key) for version, key in raw.items()}
            self._stamp = stamp


def _read(path: Path) -> tuple[tuple[int, int, int], dict[int, bytes]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyFileError(f"cannot read root key file {path}") from exc
    with os.fdopen(fd, "rb") as file:
        # fstat on the open file, not stat on the path: no window to swap the file in between.
        st = os.fstat(file.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"root key file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"root key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        data = file.read()
    return (st.st_ino, st.st_mtime_ns, st.st_size), _parse(data, path)


def _parse(data: bytes, path: Path) -> dict[int, bytes]:
    if len(data) == KEY_BYTES:
        return {1: data}
    try:
        lines = data.decode("ascii").split()
    except UnicodeDecodeError:
        raise KeyFileError(f"root key file {path} is malformed") from None
    if len(lines) == 1:
        return {1: _decode_key(lines[0], path)}
    if " ".join(lines[:2]) != _MAGIC or len(lines) % 2:
        raise KeyFileError(f"root key file {path} is malformed")
    keys: dict[int, bytes] = {}
    for number, encoded in zip(lines[2::2], lines[3::2], strict=True):
        if not number.isdigit() or int(number) in keys:
            raise KeyFileError(f"root key file {path} has a bad version number")
        keys[int(number)] = _decode_key(encoded, path)
    if not keys:
        raise KeyFileError(f"root key file {path} holds no key")
    return keys


def _decode_key(encoded: str, path: Path) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise KeyFileError(f"root key file {path} is malformed") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"root key file {path} holds a key that is not 32 bytes")
    return key


def _format(keys: dict[int, bytes]) -> bytes:
    lines = [_MAGIC] + [f"{v} {base64.b64encode(keys[v]).decode()}" for v in sorted(keys)]
    return ("\n".join(lines) + "\n").encode("ascii")


def _write_new(path: Path, keys: dict[int, bytes]) -> None:
    # O_EXCL: never follow a planted symlink or truncate an existing key; 0o600 from the start,
    # so there is no moment where the key is readable by others.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise KeyFileError(f"root key file {path} already exists") from None
    with os.fdopen(fd, "wb") as file:
        file.write(_format(keys))
        file.flush()
        os.fsync(file.fileno())


def _replace(path: Path, keys: dict[int, bytes]) -> None:
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        _write_new(temporary, keys)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
