"""The log side of C2SP tlog-witness: send each new checkpoint, collect cosignatures.

:func:`add_checkpoint` is one request. :class:`CheckpointPusher` is what a
kernel runs: it follows its own log file (a reader of the format, never the
writer) to build consistency proofs, remembers the size each witness last
cosigned (learning it from a 409 when it does not know), checks returned
cosignatures against the witness's key when one is configured, and appends
the checkpoint with every cosignature it got to ``LOG.witness``.

Example::

    >>> ends = [WitnessEndpoint(url, key)]                          # doctest: +SKIP
    >>> CheckpointPusher(Path("audit/vak.log"), ends).push(note)    # doctest: +SKIP
    ['w1.example']
"""

from __future__ import annotations

import base64
import http.client
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from vak.audit.checkpoint import SignedCheckpoint
from vak.audit.merkle import MerkleTree
from vak.errors import WitnessError
from vak.witness.cosignature import WitnessKey, parse_cosignature, verify_cosignatures
from vak.witness.note import log_checkpoint
from vak.witness.sidecar import append_cosigned, sidecar_for

__all__ = ["CheckpointPusher", "WitnessEndpoint", "add_checkpoint", "request_body"]

_MAX_REPLY = 64 << 10
_SIZE = re.compile(rb"(0|[1-9][0-9]{0,18})\n")


def request_body(note: str, old_size: int, proof: Sequence[bytes]) -> bytes:
    """The add-checkpoint request: ``old N``, proof lines, a blank line, the note."""
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


def add_checkpoint(url: str, note: str, old_size: int, proof: Sequence[bytes], *,
                   timeout: float = 5.0) -> list[str]:
    """POST one checkpoint to the witness at ``url`` (its submission prefix).

    Returns:
        the signature lines of the reply (each with its newline).

    Raises:
        WitnessError: ``status`` 409 with ``known_size`` (the witness's size),
            any other refusal with its status, or ``status`` 0 when unreachable.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WitnessError(f"witness URL must be http(s)://host[:port]/prefix, got "
                           f"{url[:80]!r}", status=0)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path.rstrip("/") + "/add-checkpoint",
                     body=request_body(note, old_size, proof),
                     headers={"Content-Type": "text/plain"})
        reply = conn.getresponse()
        data = reply.read(_MAX_REPLY + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise WitnessError(f"witness {parts.netloc} unreachable: {type(exc).__name__}",
                           status=0, witness=parts.netloc) from None
    finally:
        conn.close()
    if reply.status == 409 and reply.getheader("Content-Type", "") == "text/x.tlog.size":
        m = _SIZE.fullmatch(data)
        if m:
            raise WitnessError(f"witness {parts.netloc} has cosigned size {int(m.group(1))}",
                               status=409, known_size=int(m.group(1)), witness=parts.netloc)
    if reply.status != 200 or len(data) > _MAX_REPLY:
        raise WitnessError(f"witness {parts.netloc} refused the checkpoint: HTTP "
                           f"{reply.status}", status=reply.status, witness=parts.netloc)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessError(f"witness {parts.netloc} sent a non-UTF-8 reply", status=200) from None
    lines = text.splitlines(keepends=True)
    if not lines or any(not ln.startswith("\u2014 ") or not ln.endswith("\n") for ln in lines):
        raise WitnessError(f"witness {parts.netloc} sent no signature lines", status=200)
    return lines


@dataclass(slots=True)
class WitnessEndpoint:
    """One configured witness: its URL, optionally its key, and the size it last cosigned."""

    url: str
    key: WitnessKey | None = None
    known_size: int | None = None


@dataclass(slots=True)
class CheckpointPusher:
    """Sends checkpoints of one log to its witnesses (see the module docstring)."""

    log: Path
    witnesses: Sequence[WitnessEndpoint]
    #: witness keys for endpoints configured without their own key
    keys: Sequence[WitnessKey] = ()
    timeout: float = 5.0
    errors: list[str] = field(default_factory=list)
    _tree: MerkleTree = field(default_factory=MerkleTree)
    _offset: int = 0

    def _follow(self, size: int) -> None:
        if len(self._tree) >= size:
            return
        with self.log.open("rb") as f:
            f.seek(self._offset)
            for raw in f:
                if not raw.endswith(b"\n"):
                    break
                self._offset += len(raw)
                self._tree.append(sha256(b"\x00" + raw[:-1]).digest())
                if len(self._tree) >= size:
                    break

    def _proof(self, old: int, cp: SignedCheckpoint) -> list[bytes]:
        size = cp.checkpoint.size
        return [] if old in (0, size) else self._tree.consistency_proof(old, size)

    def _one(self, w: WitnessEndpoint, cp: SignedCheckpoint) -> list[str]:
        size = cp.checkpoint.size
        for _ in range(2):
            old = w.known_size if w.known_size is not None else 0
            if old > size:
                raise WitnessError(f"witness {w.url} has already cosigned size {old} > {size}",
                                   status=409, known_size=old)
            try:
                lines = add_checkpoint(w.url, cp.note, old, self._proof(old, cp),
                                       timeout=self.timeout)
            except WitnessError as exc:
                known = exc.details.get("known_size")
                if known is None or known == old:
                    raise
                w.known_size = int(known)
                continue
            w.known_size = size
            keys = [w.key] if w.key is not None else list(self.keys)
            if keys:  # keep only cosignatures that verify by a configured key
                good = {(k.name, k.key_id) for k in
                        verify_cosignatures(cp.checkpoint.body(), lines, keys, 1)}
                lines = [ln for ln in lines
                         if (c := parse_cosignature(ln)) and (c.name, c.key_id) in good]
            return lines
        raise WitnessError(f"witness {w.url} keeps changing its size", status=409)

    def push(self, note: str) -> list[str]:
        """Send ``note`` to every witness; returns the URLs that cosigned it.

        A witness that refuses or cannot be reached is skipped (its reason is
        kept in :attr:`errors`); the note and the cosignatures gathered are
        appended to ``LOG.witness`` when at least one witness cosigned.

        Raises:
            WitnessError: the note is malformed, or the log on disk does not
                hold the checkpoint's tree (nothing is sent then).
        """
        cp, _ = log_checkpoint(note)
        self._follow(cp.checkpoint.size)
        if len(self._tree) < cp.checkpoint.size or (
                cp.checkpoint.size and self._tree.root(cp.checkpoint.size) != cp.checkpoint.root):
            raise WitnessError(f"{self.log}: the log does not give the root of the checkpoint at "
                               f"size {cp.checkpoint.size}; not sent to witnesses")
        got: list[str] = []
        cosigs: list[str] = []
        for w in self.witnesses:
            try:
                cosigs += self._one(w, cp)
            except WitnessError as exc:
                self.errors.append(exc.message)
                continue
            got.append(w.url)
        if cosigs:
            append_cosigned(sidecar_for(self.log), cp.note + "".join(cosigs))
        return got
