"""RFC 9162 Merkle tree: reference vectors, every transparency-dev probe, and properties.

Strictness choices, checked below:
- Every hash (leaf, root, proof element) must be exactly 32 bytes. transparency-dev agrees for
  inclusion (empty root or leaf hash is an error) but, for a consistency proof between equal
  sizes, compares the two roots without looking at their length: its probe
  consistency/additional/sizes-are-equal-one-and-proof-is-empty.json passes two identical
  12-byte placeholder roots and expects success. We reject it, the only probe where we differ.
- A consistency proof from size 0 is an error, even to size 0 with an empty proof, as in
  transparency-dev: the empty tree is a prefix of every tree, so there is nothing to prove.
- Equal sizes take an empty proof and equal roots; any surplus or missing proof element, before
  or after the others, is an error (no element is ignored).
- An inclusion index must be below the tree size, so a tree of size 0 has no inclusion proof.
"""

import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit import merkle
from audit.merkle import ProofError
from tests.audit import rfc9162_reference as ref
from tests.audit.testdata import MERKLE, load, probes

DEVIATIONS = {"consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}
VECTORS = load(MERKLE / "rfc6962_hasher_and_reference_8leaf.json")
TREE = load(MERKLE / "rfc6962_reference_tree_8_leaves.json")
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
LEAF_HASHES = [merkle.leaf_hash(x) for x in LEAVES]


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _relative(path: Path) -> str:
    return path.relative_to(MERKLE / "transparency-dev-testdata").as_posix()


# -- reference vectors ---------------------------------------------------------------------


def test_hasher_vectors() -> None:
    empty, empty_leaf, leaf, node = VECTORS["hasher_vectors"]
    assert merkle.root([]).hex() == empty["root"] == merkle.EMPTY_ROOT.hex()
    assert merkle.leaf_hash(b"").hex() == empty_leaf["leaf_hash"]
    assert merkle.leaf_hash(bytes.fromhex(leaf["leaf_data"])).hex() == leaf["leaf_hash"]
    left, right = bytes.fromhex(node["left"]), bytes.fromhex(node["right"])
    assert merkle.node_hash(left, right).hex() == node["node_hash"]


def test_reference_tree_leaves_and_roots() -> None:
    assert TREE["leaf_inputs_hex"] == VECTORS["leaves"]
    assert [h.hex() for h in LEAF_HASHES] == TREE["leaf_hashes_hex"] == VECTORS["leaf_hashes"]
    assert TREE["root_hash_by_tree_size_hex"] == VECTORS["roots_by_tree_size"]
    for size, expected in VECTORS["roots_by_tree_size"].items():
        assert merkle.root(LEAF_HASHES[: int(size)]).hex() == expected
        assert ref.mth(LEAVES[: int(size)]).hex() == expected


def test_reference_tree_node_hashes() -> None:
    source = merkle.MemoryHashSource(LEAF_HASHES)
    for level, hashes in enumerate(TREE["node_hashes_by_level_hex"]):
        width = 1 << level
        found = [source.subtree_hash(i * width, (i + 1) * width).hex() for i in range(len(hashes))]
        assert found == hashes


@pytest.mark.parametrize("case", TREE["inclusion_proofs"], ids=lambda c: f"{c['leaf_index']}")
def test_reference_inclusion_proofs(case: dict[str, Any]) -> None:
    size, index = case["tree_size"], case["leaf_index"]
    proof = merkle.inclusion_proof(merkle.MemoryHashSource(LEAF_HASHES[:size]), index, size)
    assert [p.hex() for p in proof] == case["audit_path_hex"]
    root = bytes.fromhex(case["root_hex"])
    merkle.verify_inclusion(index, size, bytes.fromhex(case["leaf_hash_hex"]), proof, root)


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"])
def test_hasher_file_inclusion_proofs(case: dict[str, Any]) -> None:
    size, index = case["tree_size"], case["leaf_index"]
    proof = merkle.inclusion_proof(merkle.MemoryHashSource(LEAF_HASHES), index, size)
    assert [p.hex() for p in proof] == case["proof"]


@pytest.mark.parametrize("case", TREE["consistency_proofs"], ids=str)
def test_reference_consistency_proofs(case: dict[str, Any]) -> None:
    first, second = case["first_size"], case["second_size"]
    proof = merkle.consistency_proof(merkle.MemoryHashSource(LEAF_HASHES), first, second)
    assert [p.hex() for p in proof] == case["proof_hex"]
    roots = bytes.fromhex(case["first_root_hex"]), bytes.fromhex(case["second_root_hex"])
    merkle.verify_consistency(first, second, *roots, proof)


@pytest.mark.parametrize("case", VECTORS["consistency_proofs"], ids=str)
def test_hasher_file_consistency_proofs(case: dict[str, Any]) -> None:
    proof = merkle.consistency_proof(
        merkle.MemoryHashSource(LEAF_HASHES), case["size1"], case["size2"]
    )
    assert [p.hex() for p in proof] == case["proof"]


# -- transparency-dev probes ---------------------------------------------------------------


@pytest.mark.parametrize("path", probes("inclusion"), ids=_relative)
def test_inclusion_probe(path: Path) -> None:
    case = load(path)
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", probes("consistency"), ids=_relative)
def test_consistency_probe(path: Path) -> None:
    case = load(path)
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"] or _relative(path) in DEVIATIONS:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_the_deviation_is_the_hash_length() -> None:
    (name,) = DEVIATIONS
    case = load(MERKLE / "transparency-dev-testdata" / name)
    assert not case["wantErr"]
    with pytest.raises(ProofError, match="12 bytes long"):
        merkle.verify_consistency(1, 1, _b64(case["root1"]), _b64(case["root2"]), [])


def test_probe_sets_are_complete() -> None:
    assert len(probes("inclusion")) == 98
    assert len(probes("consistency")) == 98


# -- generation errors and verification edge cases -----------------------------------------


def test_generation_refuses_out_of_range() -> None:
    source = merkle.MemoryHashSource(LEAF_HASHES)
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_proof(source, 8, 8)
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_proof(source, -1, 8)
    for first, second in [(0, 8), (5, 4), (-1, 3)]:
        with pytest.raises(ValueError, match="no consistency proof"):
            merkle.consistency_proof(source, first, second)


def test_verification_edge_cases() -> None:
    h = LEAF_HASHES
    root8 = merkle.root(h)
    with pytest.raises(ProofError, match="outside"):
        merkle.verify_inclusion(8, 8, h[0], [], root8)
    with pytest.raises(ProofError, match="too few"):
        merkle.verify_inclusion(0, 8, h[0], [h[1]], root8)
    with pytest.raises(ProofError, match="too many"):
        merkle.verify_inclusion(0, 1, h[0], [h[1]], h[0])
    with pytest.raises(ProofError, match="empty proof"):
        merkle.verify_consistency(3, 3, root8, root8, [h[0]])
    with pytest.raises(ProofError, match="different roots"):
        merkle.verify_consistency(3, 3, h[0], h[1], [])
    with pytest.raises(ProofError, match="is empty"):
        merkle.verify_consistency(3, 8, h[0], root8, [])
    merkle.verify_consistency(3, 3, h[0], h[0], [])
    proof = merkle.consistency_proof(merkle.MemoryHashSource(h), 3, 8)
    with pytest.raises(ProofError, match="first root"):
        merkle.verify_consistency(3, 8, h[0], root8, proof)
    with pytest.raises(ProofError, match="second root"):
        merkle.verify_consistency(3, 8, merkle.root(h[:3]), h[0], proof)
    with pytest.raises(ProofError, match="too many"):
        merkle.verify_consistency(3, 4, merkle.root(h[:3]), merkle.root(h[:4]), [h[0]] * 5)


# -- properties ----------------------------------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    return data[: bit // 8] + bytes((data[bit // 8] ^ 1 << bit % 8,)) + data[bit // 8 + 1 :]


@given(st.lists(st.binary(max_size=8), max_size=100))
def test_iterative_root_is_the_recursive_definition(leaves: list[bytes]) -> None:
    assert merkle.root([merkle.leaf_hash(x) for x in leaves]) == ref.mth(leaves)


@given(leaf_lists, st.data())
def test_inclusion_proofs_verify_and_match_the_definition(
    leaves: list[bytes], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    hashes = [merkle.leaf_hash(x) for x in leaves]
    proof = merkle.inclusion_proof(merkle.MemoryHashSource(hashes), index, len(leaves))
    assert proof == ref.path(index, leaves)
    merkle.verify_inclusion(index, len(leaves), hashes[index], proof, ref.mth(leaves))


@given(leaf_lists, st.data())
def test_any_change_to_an_inclusion_proof_fails(leaves: list[bytes], data: st.DataObject) -> None:
    size = len(leaves)
    index = data.draw(st.integers(0, size - 1))
    hashes = [merkle.leaf_hash(x) for x in leaves]
    root = merkle.root(hashes)
    proof = merkle.inclusion_proof(merkle.MemoryHashSource(hashes), index, size)
    bit = data.draw(st.integers(0, 255))
    extra = data.draw(st.binary(min_size=32, max_size=32))
    at = data.draw(st.integers(0, len(proof)))
    altered = [(hashes[index], [*proof[:at], extra, *proof[at:]], root)]
    altered += [(_flip(hashes[index], bit), proof, root), (hashes[index], proof, _flip(root, bit))]
    if proof:
        k = at % len(proof)
        altered.append((hashes[index], [*proof[:k], *proof[k + 1 :]], root))
        altered.append((hashes[index], [*proof[:k], _flip(proof[k], bit), *proof[k + 1 :]], root))
        altered.append((hashes[index], [*proof[:k], extra, *proof[k + 1 :]], root))
    for leaf, bad_proof, bad_root in altered:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, leaf, bad_proof, bad_root)


@given(leaf_lists, st.data())
def test_consistency_proofs_verify_and_match_the_definition(
    leaves: list[bytes], data: st.DataObject
) -> None:
    first = data.draw(st.integers(1, len(leaves)))
    hashes = [merkle.leaf_hash(x) for x in leaves]
    proof = merkle.consistency_proof(merkle.MemoryHashSource(hashes), first, len(leaves))
    assert proof == ref.proof(first, leaves)
    roots = merkle.root(hashes[:first]), merkle.root(hashes)
    merkle.verify_consistency(first, len(leaves), *roots, proof)


@given(leaf_lists, st.data())
def test_any_change_to_a_consistency_proof_fails(leaves: list[bytes], data: st.DataObject) -> None:
    second = len(leaves)
    first = data.draw(st.integers(1, second))
    hashes = [merkle.leaf_hash(x) for x in leaves]
    old, new = merkle.root(hashes[:first]), merkle.root(hashes)
    proof = merkle.consistency_proof(merkle.MemoryHashSource(hashes), first, second)
    bit = data.draw(st.integers(0, 255))
    extra = data.draw(st.binary(min_size=32, max_size=32))
    at = data.draw(st.integers(0, len(proof)))
    altered = [(old, new, [*proof[:at], extra, *proof[at:]])]
    altered += [(_flip(old, bit), new, proof), (old, _flip(new, bit), proof)]
    if proof:
        k = at % len(proof)
        altered.append((old, new, [*proof[:k], *proof[k + 1 :]]))
        altered.append((old, new, [*proof[:k], _flip(proof[k], bit), *proof[k + 1 :]]))
        altered.append((old, new, [*proof[:k], extra, *proof[k + 1 :]]))
    for bad_old, bad_new, bad_proof in altered:
        with pytest.raises(ProofError):
            merkle.verify_consistency(first, second, bad_old, bad_new, bad_proof)
