"""Compact ranges: the log's O(log n) append state and the prefix an export carries."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import merkle
from audit.compact_range import CompactRange


@given(st.lists(st.binary(max_size=4), max_size=130))
def test_root_after_each_append_is_the_full_root(leaves: list[bytes]) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    tree = CompactRange()
    assert tree.root() == merkle.EMPTY_ROOT
    for n, h in enumerate(hashes, 1):
        tree.append(h)
        assert tree.size == n
        assert len(tree.hashes) == n.bit_count()
        assert tree.root() == merkle.root(hashes[:n])


@given(st.lists(st.binary(max_size=4), max_size=130), st.data())
def test_from_source_equals_appending(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    size = data.draw(st.integers(0, len(hashes)))
    appended = CompactRange()
    for h in hashes[:size]:
        appended.append(h)
    assert CompactRange.from_source(merkle.MemoryHashSource(hashes), size) == appended
    assert CompactRange.decode(appended.encode()) == appended


def test_encoding_layout() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    tree = CompactRange(3, [merkle.node_hash(a, b), a])
    assert tree.encode() == (3).to_bytes(8, "big") + merkle.node_hash(a, b) + a
    assert CompactRange.decode((0).to_bytes(8, "big")) == CompactRange()


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 7, (1).to_bytes(8, "big"), (1).to_bytes(8, "big") + b"\x00" * 33,
     (2).to_bytes(8, "big") + b"\x00" * 64],
)  # fmt: skip
def test_decode_rejects_wrong_lengths(data: bytes) -> None:
    with pytest.raises(ValueError, match="one hash per set bit"):
        CompactRange.decode(data)


def test_construction_checks_shape() -> None:
    with pytest.raises(ValueError, match="one hash per set bit"):
        CompactRange(2, [])
    with pytest.raises(ValueError, match="one hash per set bit"):
        CompactRange(-1, [])
    with pytest.raises(ValueError, match="bytes long"):
        CompactRange(1, [b"short"])
