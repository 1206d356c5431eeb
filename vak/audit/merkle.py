"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs.

Invariants: leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 ||
left || right)``, ``MTH({})`` is ``SHA-256("")``; a tree of ``n`` leaves splits at
``k``, the largest power of two below ``n``. Verifiers *raise*
:class:`~vak.errors.AuditVerificationError`; they never return a bool.

Example::

    >>> t = MerkleTree(); [t.append(leaf_hash(b"%d" % i)) for i in range(5)] and None
    >>> proof = t.inclusion_proof(3, 5)
    >>> verify_inclusion(t.leaf(3), 3, 5, proof, t.root(5))
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from hashlib import sha256

from vak.errors import AuditVerificationError

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "MerkleTree",
    "ProofTree",
    "fold_frontier",
    "join_levels",
    "leaf_hash",
    "node_hash",
    "perfect_levels",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = sha256(b"").digest()
_NODE_PREFIX = sha256(b"\x01")


def _node(pair: bytes | bytearray) -> bytes:
    """Node hash of 64 bytes ``left || right`` (prefix state copied: cheaper than new)."""
    h = _NODE_PREFIX.copy()
    h.update(pair)
    return h.digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash of ``data``."""
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash."""
    return sha256(b"\x01" + left + right).digest()


def perfect_levels(leaves: bytes, height: int, first: int = 0) -> list[bytes]:
    """Levels 0..``height`` of the nodes wholly inside a stretch of leaves.

    ``leaves`` are concatenated 32-byte leaf hashes of tree positions ``first``
    onwards; level ``h`` holds, left to right, every node of height ``h`` whose
    ``2**h`` leaves all lie in the stretch. Stretches hashed apart (in other
    processes) join with :func:`join_levels`.
    """
    levels = [bytes(leaves)]
    end = first + len(leaves) // 32
    for h in range(1, height + 1):
        below = levels[-1]
        here = -(-first >> h)  # first node index of this level (ceil)
        count = max((end >> h) - here, 0)
        at = (2 * here - -(-first >> (h - 1))) * 32
        levels.append(b"".join([_node(below[j : j + 64])
                                for j in range(at, at + 64 * count, 64)]))
    return levels


def join_levels(parts: Sequence[tuple[int, Sequence[bytes]]], size: int) -> list[bytes]:
    """The whole tree's levels from consecutive stretches ``(first, perfect_levels)``.

    Between two stretches at most one node per level straddles the boundary;
    it is hashed here from the level below, already joined.
    """
    if not parts:
        return [b""]
    depth = min(len(levels) for _, levels in parts)
    joined = [b"".join(levels[0] for _, levels in parts)]
    for h in range(1, depth):
        below, out = joined[-1], bytearray()
        for first, levels in parts:
            target = min(-(-first >> h), size >> h)
            while len(out) < target * 32:
                m = len(out) // 32
                out += _node(below[64 * m : 64 * m + 64])
            out += levels[h]
        joined.append(bytes(out))
    return joined


def _split(n: int) -> int:
    """Largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """Streaming root computation: O(log n) memory, one node hash per leaf amortised.

    The verifier feeds every leaf once and asks for the root at checkpoint sizes.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        stack = self._stack
        stack.append(leaf)
        n = self.size
        while n & 1:
            right = stack.pop()
            stack[-1] = sha256(b"\x01" + stack[-1] + right).digest()
            n >>= 1
        self.size += 1

    def root(self) -> bytes:
        return fold_frontier(self._stack)


def fold_frontier(stack: Sequence[bytes]) -> bytes:
    """Root of a tree from its frontier: perfect-subtree roots, largest (leftmost) first."""
    if not stack:
        return EMPTY_ROOT
    acc = stack[-1]
    for h in reversed(stack[:-1]):
        acc = node_hash(h, acc)
    return acc


class ProofTree(abc.ABC):
    """RFC 9162 roots and proofs over any store of perfect-subtree hashes.

    A subclass says how many leaves it holds (``__len__``) and how to get the
    hash of a perfect subtree (``_perfect``); the recursion over ranges and the
    proof algorithms live here once, for the in-memory tree of the verifier
    and the on-disk tree of the writer (:mod:`vak.audit.treefile`).
    """

    __slots__ = ()

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def _perfect(self, height: int, index: int) -> bytes:
        """Hash of the perfect subtree of 2**height leaves starting at index << height."""

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end); ``start`` is aligned as in RFC 9162 recursion."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self._perfect(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = len(self) if size is None else size
        if not 0 <= size <= len(self):
            raise ValueError(f"tree size {size} out of range 0..{len(self)}")
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Audit path for leaf ``index`` in the tree of ``size`` leaves (RFC 9162 2.1.3.1)."""
        if not 0 <= index < size <= len(self):
            raise ValueError(f"no leaf {index} in a tree of size {size}")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """Proof that the tree of ``size1`` is a prefix of ``size2`` (RFC 9162 2.1.4.1)."""
        if not 0 <= size1 <= size2 <= len(self):
            raise ValueError(f"bad consistency range {size1}..{size2}")
        if size1 in (0, size2):
            return []
        proof: list[bytes] = []
        start, end, complete = 0, size2, True
        while True:
            n = end - start
            if size1 - start == n:
                if not complete:
                    proof.append(self._subtree(start, end))
                break
            k = _split(n)
            if size1 - start <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start += k
                complete = False
        proof.reverse()
        return proof


class MerkleTree(ProofTree):
    """Leaf hashes in one bytearray plus lazily filled levels of perfect subtrees.

    ``append`` only stores 32 bytes (the hot path stays cheap); proofs fill the
    cached levels on demand, so a proof costs O(log^2 n) hashes at most. Memory
    grows with the leaves: the verifier's tree; the writer keeps an O(log n)
    frontier and its nodes on disk instead (:mod:`vak.audit.treefile`).
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    def __len__(self) -> int:
        return len(self._levels[0]) // 32

    def append(self, leaf: bytes) -> None:
        self._levels[0] += leaf

    @property
    def leaves_buffer(self) -> bytearray:
        """The leaf level itself; appending 32 bytes to it appends a leaf (hot path)."""
        return self._levels[0]

    def truncate(self, size: int) -> None:
        """Forget leaves beyond ``size`` (used when another process's tail is re-read)."""
        for h, level in enumerate(self._levels):
            del level[(size >> h) * 32 :]

    @classmethod
    def from_leaves(cls, leaves: bytes | bytearray) -> MerkleTree:
        """A tree over concatenated 32-byte leaf hashes (bulk load for verifiers)."""
        if len(leaves) % 32:
            raise ValueError("leaf buffer is not a multiple of 32 bytes")
        tree = cls()
        tree._levels[0] += leaves
        return tree

    @classmethod
    def from_levels(cls, levels: Sequence[bytes | bytearray]) -> MerkleTree:
        """A tree from precomputed levels (level 0 the leaves, each as :func:`perfect_levels`).

        Raises:
            ValueError: a level does not hold ``len(leaves) // 2**h`` whole nodes.
        """
        tree = cls.from_leaves(levels[0])
        n = len(tree)
        for h, level in enumerate(levels[1:], 1):
            if len(level) != (n >> h) * 32:
                raise ValueError(f"merkle level {h} holds {len(level)} bytes, want "
                                 f"{(n >> h) * 32}")
            tree._levels.append(bytearray(level))
        return tree

    def leaf(self, index: int) -> bytes:
        return bytes(self._levels[0][index * 32 : index * 32 + 32])

    def _perfect(self, height: int, index: int) -> bytes:
        levels = self._levels
        while len(levels) <= height:
            levels.append(bytearray())
        level = levels[height]
        if len(level) < index * 32 + 32:
            for h in range(1, height + 1):  # bottom-up, tight loop: one hash per new node
                below, above = levels[h - 1], levels[h]
                start, end = len(above) * 2, len(below) // 64 * 64
                if start < end:
                    above += b"".join([_node(below[j : j + 64]) for j in range(start, end, 64)])
        return bytes(level[index * 32 : index * 32 + 32])


def _fail(message: str) -> AuditVerificationError:
    return AuditVerificationError(message)


def _check_hashes(*hashes: bytes) -> None:
    for h in hashes:
        if len(h) != 32:
            raise _fail(f"hash of {len(h)} bytes, want 32")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 section 2.1.3.2).

    Raises:
        AuditVerificationError: the proof is malformed or does not lead to ``root``.
    """
    _check_hashes(leaf, root, *proof)
    if not 0 <= index < size:
        raise _fail(f"leaf index {index} outside tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise _fail("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _fail("inclusion proof is too short")
    if r != root:
        raise _fail("inclusion proof does not lead to the checkpoint root")


def verify_consistency(  # noqa: C901 - RFC 9162 2.1.4.2, transcribed step by step
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check a consistency proof (RFC 9162 section 2.1.4.2).

    Raises:
        AuditVerificationError: sizes are inconsistent or the proof does not verify.
    """
    if not 0 <= size1 <= size2:
        raise _fail(f"consistency sizes {size1} > {size2}")
    if size1 == 0:
        # Every tree extends the empty tree; a "proof" of that proves nothing, so
        # like transparency-dev/merkle we refuse it rather than accept vacuously.
        raise _fail("consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise _fail("consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise _fail("equal tree sizes with different roots")
        return
    if not proof:
        raise _fail("empty consistency proof")
    _check_hashes(root1, root2, *proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _fail("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _fail("consistency proof is too short")
    if fr != root1 or sr != root2:
        raise _fail("consistency proof does not match the two roots")
