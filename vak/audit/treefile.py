"""The writer's Merkle tree: an O(log n) frontier in memory, every node on disk.

Why: a log that keeps every leaf in memory grows by 32 bytes an entry for the
kernel's lifetime (and proofs cache more). Here the writer keeps only the
frontier (the roots of the perfect subtrees that make up the tree, at most
one per bit of the size) and appends each leaf and each interior node it
completes to a node file in post-order, so any perfect subtree's hash is one
``pread`` away and inclusion / consistency proofs cost O(log^2 n) reads.

Invariants:

* the file is derived data: the writer rebuilds it from the log on every
  open, in an unnamed file in the log's directory (``O_TMPFILE``, or created
  and unlinked at once), so nothing in it outlives the writer, is trusted
  across restarts, or is read by a verifier;
* node ``(height h, index i)`` sits at post-order position
  ``(i + 1) * 2**(h + 1) - popcount(i + 1) - ctz(i + 1) - 1`` (32 bytes each);
  after ``m`` leaves the file holds ``2m - popcount(m)`` nodes;
* :meth:`TreeFile.extend` is the only writer (the caller serialises calls);
  proofs and roots read only positions already written.

Example::

    >>> tree = TreeFile.create_anonymous(log_dir)       # doctest: +SKIP
    >>> tree.extend(leaf_hashes)                        # doctest: +SKIP
    >>> tree.inclusion_proof(3, len(tree))              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vak.audit.merkle import ProofTree, fold_frontier, node_hash

__all__ = ["TreeFile", "node_position", "tree_path_for"]


def tree_path_for(log_path: str | Path) -> Path:
    """The node file of ``log_path``: ``<log>.tree``."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.name + ".tree")


def node_position(height: int, index: int) -> int:
    """Post-order position of node ``(height, index)`` (see the module docstring)."""
    m = index + 1
    ctz = (m & -m).bit_length() - 1
    return (m << (height + 1)) - m.bit_count() - ctz - 1


class TreeFile(ProofTree):
    """Frontier plus post-order node file (see the module docstring)."""

    __slots__ = ("_fd", "_frontier", "_heights", "_nodes", "_size", "path")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._frontier: list[bytes] = []  # roots of perfect subtrees, leftmost first
        self._heights: list[int] = []
        self._size = 0
        self._nodes = 0

    @classmethod
    def create(cls, path: str | Path) -> TreeFile:
        """An empty tree at ``path`` (an existing file is truncated: it is rebuilt).

        Raises:
            OSError: the file cannot be created.
        """
        path = Path(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        return cls(path, fd)

    @classmethod
    def create_anonymous(cls, directory: str | Path) -> TreeFile:
        """An empty tree in an unnamed file in ``directory`` (gone when closed or on a crash).

        Raises:
            OSError: no file can be created there.
        """
        directory = Path(directory)
        flag = getattr(os, "O_TMPFILE", 0)
        if flag:
            try:
                return cls(directory / "<tree>", os.open(directory, flag | os.O_RDWR, 0o600))
            except OSError:
                pass  # e.g. a filesystem without O_TMPFILE: fall back to create + unlink
        path = directory / f".vak-tree-{os.getpid()}-{os.urandom(6).hex()}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
        return cls(path, fd)

    def __len__(self) -> int:
        return self._size

    @property
    def frontier_size(self) -> int:
        """Hashes held in memory (at most one per bit of the size)."""
        return len(self._frontier)

    def extend(self, leaves: bytes | bytearray) -> None:
        """Append concatenated 32-byte leaf hashes and every node they complete.

        Raises:
            OSError: the node file cannot be written (the tree is then unchanged
                in memory, and the caller treats the log as failed).
        """
        frontier, heights = list(self._frontier), list(self._heights)
        size = self._size
        out = bytearray()
        for at in range(0, len(leaves), 32):
            node = bytes(leaves[at : at + 32])
            out += node
            height = 0
            while heights and heights[-1] == height:
                node = node_hash(frontier.pop(), node)
                heights.pop()
                height += 1
                out += node
            frontier.append(node)
            heights.append(height)
            size += 1
        view = memoryview(out)
        pos = self._nodes * 32
        while view:
            written = os.pwrite(self._fd, view, pos)
            view = view[written:]
            pos += written
        self._frontier, self._heights = frontier, heights
        self._size = size
        self._nodes += len(out) // 32

    def root(self, size: int | None = None) -> bytes:
        if size is None or size == self._size:
            return fold_frontier(self._frontier)
        return super().root(size)

    def leaf(self, index: int) -> bytes:
        return self._perfect(0, index)

    def _perfect(self, height: int, index: int) -> bytes:
        if (index + 1) << height > self._size:
            raise ValueError(f"node ({height}, {index}) is beyond the tree of {self._size}")
        data = os.pread(self._fd, 32, node_position(height, index) * 32)
        if len(data) != 32:
            raise OSError(f"{self.path}: node file is shorter than the tree")
        return data

    def close(self) -> None:
        """Close the node file (idempotent)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.close()
