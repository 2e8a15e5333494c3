"""In-process cache of unwrapped keys: a small LRU with expiry.

Unwrapping a thread's DEK costs a KEK unwrap (possibly a round trip to an HSM or KMS) per message;
caching it briefly removes that from the hot path. The TTL bounds how long a destroyed key stays
usable in *other* processes, which ``invalidate`` cannot reach; in this process, ``invalidate``
and ``clear`` drop keys at once.

Entries are tagged with owners (e.g. the group id and the thread id), so destroying a group KEK
can drop every DEK unwrapped through it with one ``invalidate(group_id)``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

DEFAULT_MAX_ENTRIES = 1024
DEFAULT_TTL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float
    owners: frozenset[Hashable]


class KeyCache(Generic[V]):
    """Thread-safe LRU of at most ``max_entries`` keys, each kept at most ``ttl_seconds``.

    ``V`` is whatever the caller caches for a key: raw bytes or a ready ``AESGCM``.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_seconds <= 0:
            raise ValueError("max_entries must be >= 1 and ttl_seconds > 0")
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by invalidate/clear so a load that started before them is not cached after.
        self._generation = 0

    def get(self, ref: Hashable) -> V | None:
        with self._lock:
            entry = self._entries.get(ref)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                del self._entries[ref]
                return None
            self._entries.move_to_end(ref)
            return entry.value

    def put(self, ref: Hashable, value: V, *, owners: Iterable[Hashable] = ()) -> None:
        with self._lock:
            self._store(ref, value, frozenset(owners))

    def get_or_load(
        self, ref: Hashable, load: Callable[[], V], *, owners: Iterable[Hashable] = ()
    ) -> V:
        """The cached value for ``ref``, or ``load()``'s result.

        The loaded value is cached unless ``invalidate``/``clear`` ran while it was loading.

        ``load`` runs outside the lock (it may call an HSM); two threads missing at once may both
        load, which is harmless.
        """
        value = self.get(ref)
        if value is not None:
            return value
        with self._lock:
            generation = self._generation
        value = load()
        with self._lock:
            if generation == self._generation:
                self._store(ref, value, frozenset(owners))
        return value

    def discard(self, ref: Hashable) -> None:
        with self._lock:
            self._entries.pop(ref, None)
            self._generation += 1

    def invalidate(self, owner: Hashable) -> int:
        """Drop every entry tagged with ``owner``; returns how many were dropped."""
        with self._lock:
            doomed = [ref for ref, entry in self._entries.items() if owner in entry.owners]
            for ref in doomed:
                del self._entries[ref]
            self._generation += 1
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _store(self, ref: Hashable, value: V, owners: frozenset[Hashable]) -> None:
        self._entries[ref] = _Entry(value, self._clock() + self._ttl, owners)
        self._entries.move_to_end(ref)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
