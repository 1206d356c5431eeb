"""RFC 9162 proofs: transparency-dev/merkle adversarial vectors plus properties."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.audit.merkle import (
    CompactRange,
    MerkleTree,
    join_levels,
    leaf_hash,
    node_hash,
    perfect_levels,
    verify_consistency,
    verify_inclusion,
)
from vak.errors import AuditVerificationError

VECTORS = Path(__file__).parent / "vectors" / "merkle"


def _cases(folder: str) -> list[Path]:
    return sorted((VECTORS / folder).rglob("*.json"))


def _b(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(value: list[str] | None) -> list[bytes]:
    return [_b(p) for p in value or []]


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (_b(case["leafHash"]), case["leafIdx"], case["treeSize"], _proof(case["proof"]),
            _b(case["root"]))
    if case["wantErr"]:
        with pytest.raises(AuditVerificationError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], _proof(case["proof"]), _b(case["root1"]),
            _b(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(AuditVerificationError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_vector_count() -> None:
    assert len(_cases("inclusion")) > 50 and len(_cases("consistency")) > 50


def _reference_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def _tree(n: int) -> tuple[MerkleTree, list[bytes]]:
    tree, leaves = MerkleTree(), [leaf_hash(b"%d" % i) for i in range(n)]
    for leaf in leaves:
        tree.append(leaf)
    return tree, leaves


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70), st.data())
def test_roots_and_proofs_roundtrip(n: int, data: st.DataObject) -> None:
    tree, leaves = _tree(n)
    compact = CompactRange()
    for i, leaf in enumerate(leaves):
        compact.append(leaf)
        assert compact.root() == tree.root(i + 1) == _reference_root(leaves[: i + 1])
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    verify_inclusion(leaves[index], index, size, tree.inclusion_proof(index, size),
                     tree.root(size))
    size1 = data.draw(st.integers(1, size))
    verify_consistency(size1, size, tree.consistency_proof(size1, size), tree.root(size1),
                       tree.root(size))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.data())
def test_any_flipped_bit_is_rejected(n: int, data: st.DataObject) -> None:
    tree, leaves = _tree(n)
    index = data.draw(st.integers(0, n - 1))
    proof = tree.inclusion_proof(index, n)
    if not proof:
        return
    which = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    bad = bytearray(proof[which])
    bad[bit // 8] ^= 1 << (bit % 8)
    proof[which] = bytes(bad)
    with pytest.raises(AuditVerificationError):
        verify_inclusion(leaves[index], index, n, proof, tree.root(n))


def test_truncate_then_regrow() -> None:
    tree, leaves = _tree(20)
    root9 = tree.root(9)
    tree.inclusion_proof(3, 20)  # fill cached levels
    tree.truncate(9)
    assert len(tree) == 9 and tree.root() == root9
    tree.append(leaf_hash(b"x"))
    assert tree.root() == _reference_root([*leaves[:9], leaf_hash(b"x")])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), height=st.integers(0, 9), data=st.data())
def test_levels_hashed_in_stretches_join_into_the_whole_tree(
        n: int, height: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(b"%d" % i) for i in range(n)]
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=4))))
    bounds = [0, *[c for c in cuts if 0 < c < n], n] if n else [0]
    parts = [(lo, perfect_levels(b"".join(leaves[lo:hi]), height, lo))
             for lo, hi in itertools.pairwise(bounds)]
    joined = join_levels(parts, n)
    assert joined == perfect_levels(b"".join(leaves), height)[: len(joined)] or not parts
    tree = MerkleTree.from_levels(joined)
    whole = MerkleTree.from_leaves(b"".join(leaves))
    for size in range(n + 1):
        assert tree.root(size) == whole.root(size)


def test_from_levels_rejects_a_short_level() -> None:
    levels = perfect_levels(b"".join(leaf_hash(b"%d" % i) for i in range(8)), 2)
    with pytest.raises(ValueError, match="level 2"):
        MerkleTree.from_levels([levels[0], levels[1], levels[2][:32]])
