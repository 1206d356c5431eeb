"""The writer's Merkle tree: every node on disk, O(log n) buffers in memory.

Why: a log that keeps every leaf in memory grows by 32 bytes an entry for the
kernel's lifetime (and proofs cache more). Here each level of the tree has its
own unnamed file (level 0 the leaf hashes, level ``h`` the roots of the
perfect subtrees of ``2**h`` leaves, in order), written in 64 KiB runs, so any
perfect subtree's hash is one ``pread`` away and inclusion / consistency
proofs and roots cost O(log^2 n) reads. Memory is one bounded buffer per
level, whatever the log's size.

Invariants:

* the files are derived data: the writer rebuilds them from the log on every
  open, as unnamed files in the log's directory (``O_TMPFILE``, or created and
  unlinked at once), so nothing in them outlives the writer, is trusted across
  restarts, or is read by a verifier;
* after ``n`` leaves level ``h`` holds exactly ``n >> h`` nodes, node ``i`` at
  byte ``32 * i`` of its file (or still in that level's buffer);
* :meth:`TreeFile.extend` is the only writer (the caller serialises calls and
  reads); it hashes level by level in bulk, off the append path (the commit).

Example::

    >>> tree = TreeFile.create_anonymous(log_dir)       # doctest: +SKIP
    >>> tree.extend(leaf_hashes)                        # doctest: +SKIP
    >>> tree.inclusion_proof(3, len(tree))              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from hashlib import sha256
from pathlib import Path

from vak.audit.merkle import ProofTree

__all__ = ["TreeFile"]

_RUN = 1 << 16  # bytes of leaves buffered before every level is written
_NODE_PREFIX = sha256(b"\x01")


def _node(pair: bytes) -> bytes:
    h = _NODE_PREFIX.copy()
    h.update(pair)
    return h.digest()


class TreeFile(ProofTree):
    """The writer's tree: one unnamed node file per level (see the module docstring)."""

    __slots__ = ("_dir", "_fds", "_size", "_tails", "_written", "path")

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self.path = directory / "<merkle levels>"
        self._fds: list[int] = []  # one file per level; level 0 holds the leaves
        self._written: list[int] = []  # nodes of each level already in its file
        self._tails: list[bytearray] = []  # nodes of each level not yet written
        self._size = 0

    @classmethod
    def create_anonymous(cls, directory: str | Path) -> TreeFile:
        """An empty tree whose level files are unnamed files in ``directory``."""
        return cls(Path(directory))

    def _add_level(self) -> None:
        """Open the next level's unnamed file (``O_TMPFILE``, or create and unlink).

        Raises:
            OSError: no file can be created in the directory.
        """
        flag = getattr(os, "O_TMPFILE", 0)
        fd = -1
        if flag:
            try:
                fd = os.open(self._dir, flag | os.O_RDWR, 0o600)
            except OSError:
                fd = -1  # e.g. a filesystem without O_TMPFILE: fall back to create + unlink
        if fd < 0:
            path = self._dir / f".vak-tree-{os.getpid()}-{os.urandom(6).hex()}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.unlink(path)
        self._fds.append(fd)
        self._written.append(0)
        self._tails.append(bytearray())

    def __len__(self) -> int:
        return self._size

    @property
    def frontier_size(self) -> int:
        """Levels the tree has (one buffer each in memory): O(log n)."""
        return len(self._fds)

    def extend(self, leaves: bytes | bytearray) -> None:
        """Append concatenated 32-byte leaf hashes and every node they complete.

        Level by level, in bulk: the new nodes of a level pair up (the first
        with its stored left sibling when it starts at an odd index) into the
        next level's new nodes, one list comprehension per level.

        Raises:
            OSError: a level file cannot be written (the caller treats the log
                as failed).
        """
        below = bytes(leaves)
        first = self._size  # index of below's first node in its level
        self._size += len(below) // 32
        height = 0
        while below:
            if height == len(self._fds):
                self._add_level()
            left = self._perfect(height, first - 1) if first & 1 else b""
            self._tails[height] += below
            below = left + below
            pairs = len(below) // 64 * 64
            below = b"".join([_node(below[j : j + 64]) for j in range(0, pairs, 64)])
            first //= 2
            height += 1
        if len(self._tails[0]) >= _RUN:
            self.flush()  # every level at once: at most 2 * _RUN bytes are ever buffered

    def _write_level(self, height: int) -> None:
        view = memoryview(self._tails[height])
        pos = self._written[height] * 32
        while view:
            done = os.pwrite(self._fds[height], view, pos)
            view = view[done:]
            pos += done
        self._written[height] += len(self._tails[height]) // 32
        self._tails[height] = bytearray()

    def flush(self) -> None:
        """Write every buffered node to its level file.

        Raises:
            OSError: a level file cannot be written.
        """
        for height in range(len(self._fds)):
            self._write_level(height)

    def leaf(self, index: int) -> bytes:
        return self._perfect(0, index)

    def _perfect(self, height: int, index: int) -> bytes:
        if (index + 1) << height > self._size:
            raise ValueError(f"node ({height}, {index}) is beyond the tree of {self._size}")
        written = self._written[height]
        if index >= written:
            start = (index - written) * 32
            return bytes(self._tails[height][start : start + 32])
        data = os.pread(self._fds[height], 32, index * 32)
        if len(data) != 32:
            raise OSError(f"{self.path}: level {height} file is shorter than the tree")
        return data

    def close(self) -> None:
        """Close the level files (idempotent)."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.close()
