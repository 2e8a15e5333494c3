from __future__ import annotations

import functools
import threading

import pytest

from hdsapp.core.crypto.cache import KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire() -> None:
    clock = Clock()
    cache: KeyCache[bytes] = KeyCache(ttl_seconds=10, clock=clock)
    cache.put("dek:t1:1", b"k")
    clock.now = 9.9
    assert cache.get("dek:t1:1") == b"k"
    clock.now = 10.0
    assert cache.get("dek:t1:1") is None
    assert len(cache) == 0


def test_least_recently_used_is_evicted() -> None:
    cache: KeyCache[bytes] = KeyCache(max_entries=2)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"
    cache.put("c", b"3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")


def test_invalidate_by_owner() -> None:
    cache: KeyCache[bytes] = KeyCache()
    cache.put(("dek", "t1", 1), b"1", owners=("g1", "t1"))
    cache.put(("dek", "t2", 1), b"2", owners=("g1", "t2"))
    cache.put(("dek", "t3", 1), b"3", owners=("g2", "t3"))
    assert cache.invalidate("t1") == 1
    assert cache.get(("dek", "t1", 1)) is None
    assert cache.invalidate("g1") == 1
    assert cache.get(("dek", "t3", 1)) == b"3"
    cache.clear()
    assert len(cache) == 0


def test_get_or_load_loads_once() -> None:
    cache: KeyCache[bytes] = KeyCache()
    calls: list[int] = []

    def load() -> bytes:
        calls.append(1)
        return b"k"

    assert cache.get_or_load("r", load) == b"k"
    assert cache.get_or_load("r", load) == b"k"
    assert len(calls) == 1


@pytest.mark.parametrize("drop", ["invalidate", "clear", "discard"])
def test_key_dropped_during_load_is_not_cached(drop: str) -> None:
    cache: KeyCache[bytes] = KeyCache()

    def load() -> bytes:
        # Another thread shreds the key while this one is unwrapping it.
        if drop == "invalidate":
            cache.invalidate("t1")
        elif drop == "clear":
            cache.clear()
        else:
            cache.discard("r")
        return b"k"

    assert cache.get_or_load("r", load, owners=("t1",)) == b"k"
    assert cache.get("r") is None


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        KeyCache(max_entries=0)
    with pytest.raises(ValueError, match="ttl"):
        KeyCache(ttl_seconds=0)


def test_concurrent_use() -> None:
    cache: KeyCache[int] = KeyCache(max_entries=50)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(2000):
                ref = i % 80
                cache.get_or_load(ref, functools.partial(int, ref), owners=(i % 7,))
                if i % 97 == 0:
                    cache.invalidate(offset)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(cache) <= 50
    assert all(cache.get(k) in (None, k) for k in range(80))
