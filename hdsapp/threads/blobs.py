"""Where attachment contents live: sealed chunks in a blob store, never plaintext.

``BlobStore`` is the small interface an S3-compatible store can implement later; the default is
``FilesystemBlobStore`` under ``HDS_DATA_DIR/blobs`` (mode 0700 directories, 0600 files).

Transactions: a blob is written to a temporary object and moved into place (atomically) by
``put``, before the row that names it commits; ``delete_on_rollback`` removes it again if that
transaction does not commit (a failed upload leaves no row and no blob). A crash between the
move and the commit can leave an orphan blob (sealed, unreadable without its row's key scope);
``FilesystemBlobStore.sweep_temporary`` removes abandoned temporary files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction

log = logging.getLogger(__name__)

_KEY = re.compile(r"[a-z0-9-]{1,100}")
_PENDING = "hds_blobs_delete_on_rollback"
_COMMITTED = "hds_blobs_committed"


class BlobStore(Protocol):
    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` under ``key`` (written whole, then made visible at once); returns
        the number of bytes stored. An existing blob of that key is replaced."""
        ...

    def open(self, key: str) -> BinaryIO:
        """The blob for reading; ``FileNotFoundError`` if there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; no error if there is none."""
        ...


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError("a blob key is 1 to 100 of [a-z0-9-]")
    return key


class FilesystemBlobStore:
    """Blobs as files: ``<root>/<first two characters>/<key>``, temporary files in
    ``<root>/tmp``; every write is fsynced before it is moved into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        key = _checked(key)
        return self.root / key[:2] / key

    def _dir(self, path: Path) -> Path:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        final = self._path(key)
        temporary = self._dir(self.root / "tmp") / f"{uuid.uuid4().hex}.part"
        written = 0
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as stream:
                for chunk in chunks:
                    stream.write(chunk)
                    written += len(chunk)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self._dir(final.parent) / final.name)
            _fsync_dir(final.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        return written

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def sweep_temporary(self, *, older_than_seconds: float = 3600.0) -> int:
        """Remove temporary files left by a crash; returns how many."""
        removed = 0
        cutoff = time.time() - older_than_seconds
        for path in (self.root / "tmp").glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_in(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """The stream in pieces of ``size`` bytes (the last may be shorter)."""
    while piece := stream.read(size):
        yield piece


# -- blobs follow the transaction that names them ---------------------------------------------


def delete_on_rollback(session: OrmSession, store: BlobStore, key: str) -> None:
    """Remove the blob ``key`` unless the session's current transaction commits."""
    session.info.setdefault(_PENDING, []).append((store, key))


@event.listens_for(OrmSession, "after_commit")
def _keep(session: OrmSession) -> None:
    if session.info.get(_PENDING):
        session.info[_COMMITTED] = True


@event.listens_for(OrmSession, "after_transaction_end")
def _discard(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or _PENDING not in session.info:
        return
    pending: list[tuple[BlobStore, str]] = session.info.pop(_PENDING)
    if session.info.pop(_COMMITTED, False):
        return
    for store, key in pending:
        try:
            store.delete(key)
        except OSError as exc:
            log.error(
                "blob of a rolled back upload not removed", extra={"error": type(exc).__name__}
            )
