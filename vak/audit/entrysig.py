"""Optional per-entry signatures, kept in a sidecar file ``<log>.sigs``.

Why a sidecar: an entry's leaf hash is the hash of its line, so a signature
cannot live inside the line it signs without changing that hash. Keeping the
signatures beside the log leaves the chain, the Merkle tree, checkpoints and
receipts exactly as without them; a verifier that ignores the sidecar still
verifies the log, one that reads it gets a signature per entry as well.

Invariants (see docs/AUDIT-FORMAT.md section 4a):

* one canonical JSON line per entry, ``{"key_id", "leaf", "seq", "sig"}``, in
  append order, written by the log's own Ed25519 key (the checkpoint key);
* the signed message binds the origin and position, so a signature cannot be
  replayed for another log or another sequence number:
  ``"vak-audit-entry/v1\\n" || origin || "\\n" || decimal seq || "\\n" || leaf``
  (the 32 raw bytes of the entry's RFC 9162 leaf hash);
* the sidecar is flushed and fsynced together with the log, so an entry that is
  durable has its signature durable too.

Example::

    >>> msg = entry_message("ex/k1", 7, bytes(32))
    >>> msg.startswith(b"vak-audit-entry/v1\\nex/k1\\n7\\n") and len(msg) == 26 + 32
    True
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vak.audit.keys import key_id, public_bytes

__all__ = [
    "EntrySig",
    "EntrySigner",
    "entry_message",
    "read_entry_sigs",
    "sigs_path_for",
]

_DOMAIN = b"vak-audit-entry/v1\n"


def sigs_path_for(log_path: str | Path) -> Path:
    """The sidecar of ``log_path``: ``<log>.sigs``."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.name + ".sigs")


def entry_message(origin: str, seq: int, leaf: bytes) -> bytes:
    """The bytes an entry signature covers (domain, origin, position, leaf hash)."""
    return b"%s%s\n%d\n%s" % (_DOMAIN, origin.encode(), seq, leaf)


@dataclass(frozen=True, slots=True)
class EntrySig:
    """One sidecar record (``None`` fields: the line did not parse as a record)."""

    offset: int
    line: int
    seq: int | None
    leaf: bytes | None
    key_id: bytes | None
    sig: bytes | None


def read_entry_sigs(path: str | Path) -> list[EntrySig]:
    """Every record of a sidecar file, malformed ones with ``seq=None``.

    Raises:
        OSError: the file exists but cannot be read.
    """
    path = Path(path)
    if not path.exists():
        return []
    out: list[EntrySig] = []
    offset = 0
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        out.append(_parse(raw, offset, number))
        offset += len(raw)
    return out


def _parse(raw: bytes, offset: int, number: int) -> EntrySig:
    bad = EntrySig(offset, number, None, None, None, None)
    if not raw.endswith(b"\n"):
        return bad
    try:
        rec = orjson.loads(raw)
        seq, leaf, kid, sig = rec["seq"], rec["leaf"], rec["key_id"], rec["sig"]
        if type(seq) is not int or seq < 0 or type(leaf) is not str or type(kid) is not str \
                or type(sig) is not str:
            return bad
        leaf_b, kid_b = bytes.fromhex(leaf), bytes.fromhex(kid)
        sig_b = base64.b64decode(sig, validate=True)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error):
        return bad
    if len(leaf_b) != 32 or len(kid_b) != 4 or len(sig_b) != 64:
        return bad
    # one spelling only: upper-case hex or base64 with stray padding bits would decode
    # to the same bytes, so an edited record could otherwise pass unnoticed
    if leaf_b.hex() != leaf or kid_b.hex() != kid or base64.b64encode(sig_b).decode() != sig:
        return bad
    return EntrySig(offset, number, seq, leaf_b, kid_b, sig_b)


class EntrySigner:
    """Signs each appended entry into the sidecar (owned by one ``AuditLog``).

    Cost, documented honestly: one Ed25519 signature per entry (tens of
    microseconds), which is why this is off by default.
    """

    def __init__(self, path: Path, origin: str, key: Ed25519PrivateKey, *,
                 unbuffered: bool) -> None:
        self.path = path
        self._origin = origin
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._file: IO[bytes] = os.fdopen(fd, "ab", buffering=0 if unbuffered else 1 << 16)
        self.rekey(key)

    def rekey(self, key: Ed25519PrivateKey) -> None:
        """Sign from now on with ``key`` (after a rotation)."""
        self._key = key
        self._kid = key_id(self._origin, public_bytes(key)).hex()

    def sign(self, seq: int, leaf: bytes) -> None:
        sig = base64.b64encode(self._key.sign(entry_message(self._origin, seq, leaf))).decode()
        self._file.write(orjson.dumps(
            {"key_id": self._kid, "leaf": leaf.hex(), "seq": seq, "sig": sig},
            option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        self._file.flush()

    def sync(self) -> None:
        """Flush and fsync (called with the log's own commit)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.sync()
        self._file.close()
