"""Local secret files: created once with mode 0600, refused if others can read them."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

SECRET_BYTES = 32


class SecretFileError(Exception):
    pass


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def create_secret_file(path: Path, *, size: int = SECRET_BYTES) -> bool:
    """Create ``path`` holding ``size`` random bytes; False if it already exists."""
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(size))
    return True


def read_secret_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SecretFileError(f"{path} is missing: run `hdsapp init`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(f"{path} is readable by others: chmod 600 it")
    data = path.read_bytes()
    if len(data) < SECRET_BYTES:
        raise SecretFileError(f"{path} is too short to be a secret")
    return data
