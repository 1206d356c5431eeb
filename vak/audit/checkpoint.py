"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note format.

A checkpoint note is::

    <origin>\\n<tree size>\\n<base64 root hash>\\nvak-time <RFC 3339>\\n
    \\n
    \\u2014 <origin> <base64(4-byte key id || 64-byte Ed25519 signature)>\\n

The signature covers the note body (every line before the blank line, each
with its newline). Verification *raises*: :class:`CheckpointSignatureError`
for a signature that does not verify or a malformed note,
:class:`UntrustedKeyError` for a key that is unknown, revoked or expired.

Example::

    >>> cp = Checkpoint("o", 1, b"\\0" * 32, "2026-01-01T00:00:00Z")
    >>> cp.body().splitlines()[1]
    '1'
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vak.audit.keys import TrustedKey, key_id, public_bytes
from vak.errors import AuditVerificationError

__all__ = [
    "Checkpoint",
    "CheckpointSignatureError",
    "SignedCheckpoint",
    "UntrustedKeyError",
    "checkpoint_line",
    "checkpoint_path_for",
    "parse_checkpoint_line",
    "parse_note",
    "read_checkpoints",
    "sign_checkpoint",
    "verify_checkpoint",
]

_DASH = "\u2014 "
#: C2SP signed notes carry no control character but the newline (nor DEL / C1 controls)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_MAX_SIZE_DIGITS = 19  # a tree size fits in 63 bits


def checkpoint_path_for(log_path: str | Path) -> Path:
    """The checkpoint file of ``log_path``: ``<log>.ckpt``."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.name + ".ckpt")


def checkpoint_line(cp: SignedCheckpoint) -> bytes:
    """The ``.ckpt`` line of ``cp``: canonical JSON ``{"note": ...}`` and a newline."""
    return orjson.dumps({"note": cp.note}) + b"\n"


def parse_checkpoint_line(raw: bytes) -> SignedCheckpoint:
    """Parse one complete ``.ckpt`` line (with its newline).

    The line must be canonical JSON (so a duplicated key, a reordering or a
    re-spelt escape is refused) of an object whose ``"note"`` is a string.

    Raises:
        CheckpointSignatureError: anything else, whatever the JSON types.
    """
    if not raw.endswith(b"\n"):
        raise CheckpointSignatureError("checkpoint line is torn (no final newline)")
    body = raw[:-1]
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise CheckpointSignatureError("checkpoint line is not valid JSON") from None
    if type(obj) is not dict or type(obj.get("note")) is not str:
        raise CheckpointSignatureError('checkpoint line is not an object with a string "note"')
    try:
        canonical = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS) == body
    except TypeError:  # nesting orjson will not re-encode
        canonical = False
    if not canonical:
        raise CheckpointSignatureError("checkpoint line is not in canonical form")
    return parse_note(obj["note"])


def read_checkpoints(path: str | Path) -> list[tuple[int, SignedCheckpoint | None, str]]:
    """Every ``(byte offset, checkpoint or None if malformed or torn, raw line)`` of a file.

    A missing file has no checkpoints. The raw line is decoded with
    replacement characters (for messages only); a torn final line is the one
    whose raw text lacks the trailing newline.

    Raises:
        OSError: the file exists but cannot be read.
    """
    path = Path(path)
    if not path.exists():
        return []
    out: list[tuple[int, SignedCheckpoint | None, str]] = []
    offset = 0
    data = path.read_bytes()
    for raw in (data[i:j] for i, j in _line_spans(data)):
        cp: SignedCheckpoint | None
        try:
            cp = parse_checkpoint_line(raw)
        except CheckpointSignatureError:
            cp = None
        out.append((offset, cp, raw.decode("utf-8", "replace")))
        offset += len(raw)
    return out


def _line_spans(data: bytes) -> Iterable[tuple[int, int]]:
    """``(start, end)`` of each line, newline included; only ``\\n`` ends a line."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield start, end
        start = end


class CheckpointSignatureError(AuditVerificationError):
    """A checkpoint is malformed or its signature does not verify."""

    code = "audit_bad_signature"


class UntrustedKeyError(AuditVerificationError):
    """A checkpoint is signed by a key that is unknown, revoked or expired."""

    code = "audit_untrusted_key"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The signed statement: this origin's log had ``size`` entries with ``root``."""

    origin: str
    size: int
    root: bytes
    time: str

    def body(self) -> str:
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\nvak-time {self.time}\n"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint plus its signature lines ``(name, key id, signature)``."""

    checkpoint: Checkpoint
    signatures: tuple[tuple[str, bytes, bytes], ...]

    @property
    def note(self) -> str:
        lines = "".join(
            f"{_DASH}{name} {base64.b64encode(kid + sig).decode()}\n"
            for name, kid, sig in self.signatures
        )
        return f"{self.checkpoint.body()}\n{lines}"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(kid.hex() for _, kid, _ in self.signatures)


def sign_checkpoint(cp: Checkpoint, key: Ed25519PrivateKey) -> SignedCheckpoint:
    """Sign ``cp`` as the log named by its origin."""
    sig = key.sign(cp.body().encode())
    return SignedCheckpoint(cp, ((cp.origin, key_id(cp.origin, public_bytes(key)), sig),))


def parse_note(text: str) -> SignedCheckpoint:
    """Parse a checkpoint note.

    Raises:
        CheckpointSignatureError: the note is not a well-formed checkpoint (also
            for a value that is not a string, control characters, a size that
            is not plain ASCII decimal).
    """
    if not isinstance(text, str):
        raise CheckpointSignatureError("checkpoint note is not a string")
    if _CONTROL.search(text):
        raise CheckpointSignatureError("checkpoint note contains a control character")
    body, sep, sigs = text.partition("\n\n")
    lines = body.split("\n")
    if not sep or len(lines) < 3 or not sigs.endswith("\n"):
        raise CheckpointSignatureError("checkpoint note is malformed (missing lines or signature)")
    origin, size_text, root_text = lines[:3]
    try:
        if not (size_text.isascii() and size_text.isdigit()) \
                or len(size_text) > _MAX_SIZE_DIGITS \
                or (size_text != "0" and size_text.startswith("0")):
            raise ValueError(size_text)
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointSignatureError(f"checkpoint of {origin!r}: bad size or root") from None
    stamp = ""
    for ext in lines[3:]:
        if ext.startswith("vak-time "):
            stamp = ext[9:]
        elif not ext:
            raise CheckpointSignatureError("checkpoint note has an empty extension line")
    if len(root) != 32 or not origin:
        raise CheckpointSignatureError(f"checkpoint of {origin!r}: root is not 32 bytes")
    signatures = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise CheckpointSignatureError("checkpoint signature line lacks the em dash")
        try:
            name, b64 = line[len(_DASH):].split(" ")
            raw = base64.b64decode(b64.encode("ascii"), validate=True)
        except (ValueError, binascii.Error):
            raise CheckpointSignatureError("checkpoint signature line is malformed") from None
        if len(raw) != 68:
            raise CheckpointSignatureError("checkpoint signature is not 4+64 bytes")
        signatures.append((name, raw[:4], raw[4:]))
    cp = Checkpoint(origin, int(size_text), root, stamp)
    if cp.body() != body + "\n":
        raise CheckpointSignatureError("checkpoint note is not in canonical form")
    return SignedCheckpoint(cp, tuple(signatures))


def verify_checkpoint(signed: SignedCheckpoint, keys: Iterable[TrustedKey]) -> TrustedKey:
    """Return the trusted key that signed ``signed``.

    Raises:
        UntrustedKeyError: no signature is by a trusted key, or that key is revoked
            or was used after its ``not_after`` time.
        CheckpointSignatureError: a trusted key's signature does not verify.
    """
    by_id = {(k.name, k.note_key_id): k for k in keys}
    message = signed.checkpoint.body().encode()
    problem: AuditVerificationError | None = None
    for name, kid, sig in signed.signatures:
        key = by_id.get((name, kid))
        if key is None:
            continue
        if key.revoked:
            problem = UntrustedKeyError(f"checkpoint signed by revoked key {kid.hex()}")
            continue
        if key.not_after and signed.checkpoint.time > key.not_after:
            problem = UntrustedKeyError(
                f"checkpoint signed by key {kid.hex()} after it expired ({key.not_after})"
            )
            continue
        try:
            key.verify(sig, message)
        except InvalidSignature:
            raise CheckpointSignatureError(
                f"checkpoint at size {signed.checkpoint.size}: signature by key "
                f"{kid.hex()} does not verify"
            ) from None
        return key
    if problem is not None:
        raise problem
    raise UntrustedKeyError(
        f"checkpoint at size {signed.checkpoint.size} is signed by no trusted key "
        f"(key ids {', '.join(signed.key_ids) or 'none'})"
    )
