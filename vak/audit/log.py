"""``AuditLog``: the one writer of a kernel's append-only, hash-chained, checkpointed log.

Invariants:

* one log per kernel instance, with its own origin and Ed25519 key; entries
  form one linear chain (seq 0, 1, 2, ...), each ``prev`` = previous leaf hash;
* record, then act: ``append(..., durable=True)`` returns only once the entry
  is on stable storage (``strict``: fsync now, shared by every thread waiting
  at that moment; ``batched:<ms>``: the caller waits for the next group fsync,
  at most ``<ms>`` later); ``append(..., flush=True)`` returns once the entry
  is handed to the OS (survives a crash of this process, not a power loss);
* one commit pipeline: lines go to a user-space buffer, a commit writes them
  out, fsyncs and advances the durable size; a ticker commits every period,
  feeds the on-disk Merkle tree and signs a checkpoint after each durable
  batch (at most one every ``checkpoint_interval_ms``); checkpoints are fsynced;
* fail closed: any I/O error (write, fsync, lock, checkpoint, tree) *poisons*
  the writer: that call and every later append raise
  :class:`~vak.errors.AuditError`, and every thread waiting for durability
  wakes with it at once; nothing is retried or swallowed;
* constant memory: the writer keeps an O(log n) Merkle frontier and serves
  proofs from its node file (:mod:`vak.audit.treefile`), never every leaf;
* on open the whole log is checked as a verifier's fast path would (canonical
  lines, header types, one chain); a torn last line of the log or of the
  checkpoint file is cut only if no checkpoint covers it, and a ``recovered``
  entry records what was dropped; anything else that is damaged raises
  :class:`~vak.errors.AuditIntegrityError` (refuse to start);
* the key is pinned: the first ``log_opened`` binds the log's key, and the
  writer refuses to append under another key unless a ``key_rotated`` entry,
  covered by a checkpoint signed with the old key, names it (:meth:`rotate_key`);
* threads serialise on a lock; processes on ``fcntl.flock`` of ``<log>.lock``
  (exclusive for the life of the log unless ``multiprocess``, which takes it
  per append and first reads whatever another process wrote).

Example::

    >>> log = AuditLog.open(AuditSettings(Path("a/vak.log"), Path("a/log.key"),
    ...                     Path("a/args.hmac"), origin="ex/k1"))        # doctest: +SKIP
    >>> ref = log.append("heartbeat", {}, durable=True)                  # doctest: +SKIP
    >>> verify_receipt(log.receipt(ref.seq), log.public_key_path)       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vak.audit.checkpoint import (
    Checkpoint,
    CheckpointSignatureError,
    SignedCheckpoint,
    checkpoint_line,
    checkpoint_path_for,
    parse_checkpoint_line,
    read_checkpoints,
    sign_checkpoint,
    verify_checkpoint,
)
from vak.audit.entry import (
    ENTRY_OPTS,
    FORMAT_VERSION,
    HEADER_FIELDS,
    KINDS,
    ZERO_HASH,
    check_fields,
    encode_checked,
    entry_problem,
    has_float,
    needs_exact,
    rfc3339_now,
    short_repr,
    unseal,
)
from vak.audit.entrysig import EntrySigner, read_entry_sigs, sigs_path_for
from vak.audit.keyed import HMAC_PREFIX, KeyedDigest
from vak.audit.keys import (
    TrustedKey,
    export_public,
    generate_private_key,
    key_id,
    load_or_create_private_key,
    load_or_create_secret,
    parse_verifier_key,
    public_bytes,
    verifier_key,
    write_private_file,
)
from vak.audit.receipt import Receipt, verify_receipt
from vak.audit.scan import StreamScan, scan_stream
from vak.audit.settings import AuditSettings
from vak.audit.sink import AuditRef
from vak.audit.treefile import TreeFile
from vak.canonical import CanonicalError, canonical_bytes
from vak.errors import AuditError, AuditIntegrityError, AuditVerificationError, KeyFileError

__all__ = [
    "HMAC_PREFIX",
    "AuditLog",
    "CheckpointListener",
    "Receipt",
    "checkpoint_path_for",
    "parse_fsync",
    "read_checkpoints",
    "verify_receipt",
]

#: called with each new signed checkpoint, on the writer's notifier thread
CheckpointListener = Callable[[SignedCheckpoint], None]

_log = logging.getLogger(__name__)
_REQUIRED = {kind: frozenset(names) for kind, names in KINDS.items()}
_NHEADER = len(HEADER_FIELDS)
_BUF_LIMIT = 1 << 16  # bytes of lines kept before a write(2)
_BLOCK = 1 << 20
_dumps = orjson.dumps
_time_ns = time.time_ns
#: "000".."999": the microseconds of an entry's time as two lookups (cheaper than :06d)
_DIGITS3 = tuple(f"{i:03d}" for i in range(1000))
_LEAF_PREFIX = sha256(b"\x00")  # RFC 9162 leaf prefix, copied per entry (cheaper than new)
# AuditRef is a frozen dataclass; filling its slots through the member descriptors
# builds the same object at half the cost of the generated __init__ (hot path).
_new_ref = object.__new__
_set_ref_seq = AuditRef.seq.__set__  # type: ignore[attr-defined,misc]
_set_ref_hash = AuditRef.leaf_hash.__set__  # type: ignore[attr-defined,misc]
# I/O seams, looked up at call time so a test can make them fail
_write = os.write
_fsync = os.fsync


def _lock_path_for(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".lock")


def _staged_key_path(key_path: Path) -> Path:
    """Where :meth:`AuditLog.rotate_key` stages the next key before the log names it."""
    return key_path.with_name(key_path.name + ".next")


def parse_fsync(policy: str) -> float | None:
    """``"strict"`` -> None; ``"batched:<ms>"`` -> seconds.

    Raises:
        AuditError: any other spelling.
    """
    if policy == "strict":
        return None
    if policy.startswith("batched:") and policy[8:].isascii() and policy[8:].isdigit() \
            and 0 < int(policy[8:]) <= 10_000:
        return int(policy[8:]) / 1000
    raise AuditError(f"audit fsync policy {policy!r} is not 'strict' or 'batched:<1..10000 ms>'",
                     field="audit.fsync")


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[_write(fd, view):]


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _settings_for(path: str | Path, key_path: str | Path | None, origin: str | None,
                  overrides: Mapping[str, Any]) -> AuditSettings:
    """The :class:`AuditSettings` the path shorthand of :meth:`AuditLog.open` stands for."""
    if key_path is None or origin is None:
        raise AuditError("AuditLog.open(path, ...) needs key_path= and origin= "
                         "(or pass an AuditSettings)")
    key = Path(key_path)
    hmac_path = overrides.get("hmac_key_path")
    fields = {k: v for k, v in overrides.items() if k != "hmac_key_path" and v is not None}
    return AuditSettings(Path(path), key, Path(hmac_path) if hmac_path else
                         key.with_name("args.hmac"), origin=origin, **fields)


class _Recovery:
    """What opening found on disk (see :meth:`AuditLog._recover`)."""

    def __init__(self) -> None:
        self.size = 0
        self.offset = 0
        self.prev = ZERO_HASH
        self.dropped: list[dict[str, Any]] = []
        self.key_events: list[dict[str, Any]] = []
        self.checkpoints: list[SignedCheckpoint] = []


class AuditLog:
    """The audit log of one kernel. Build it with :meth:`open`."""

    #: top-level field values may be :class:`vak.audit.entry.Sealed` (checked and
    #: encoded once by their maker); writers test this before passing one
    accepts_sealed = True

    def __init__(self) -> None:  # use open()
        self._lock = threading.RLock()  # append state: buffer, size, prev, pending leaves
        self._sync_lock = threading.RLock()  # one commit at a time (and rotation)
        self._ckpt_lock = threading.RLock()  # signing key, latest checkpoint, ckpt file
        self._tree_lock = threading.Lock()  # the node file and its frontier
        self._durable_cv = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._buf = bytearray()
        self._pending = bytearray()  # leaf hashes appended but not yet in the tree
        self._size = 0
        self._offset = 0
        self._durable = 0
        self._prev = ZERO_HASH
        self._latest: SignedCheckpoint | None = None
        self._last_ckpt_at = 0.0
        self._closed = False
        self._failed: str | None = None
        self._ticker: threading.Thread | None = None
        self._entry_signer: EntrySigner | None = None
        self._listeners: list[CheckpointListener] = []
        #: (checkpoint, the one listener it is for or None for all); None stops the thread
        self._notices: queue.SimpleQueue[
            tuple[SignedCheckpoint, CheckpointListener | None] | None] = queue.SimpleQueue()
        self._notifier: threading.Thread | None = None
        self._sec_us = -(1 << 62)  # start of the cached second, in microseconds
        self._sec_text = ""
        self._fd = -1
        self._ckfd = -1
        self._lockfd = -1
        self._tree: TreeFile | None = None
        self._chain: list[TrustedKey] = []  # the log's keys, oldest first (pinning)

    # ------------------------------------------------------------------ open
    @classmethod
    def open(
        cls, settings: AuditSettings | str | Path, *, key_path: str | Path | None = None,
        origin: str | None = None, fsync: str | None = None,
        hmac_key_path: str | Path | None = None, multiprocess: bool | None = None,
        checkpoint_interval_ms: int | None = None, sign_entries: bool | None = None,
    ) -> AuditLog:
        """Open (or create) the log ``settings`` describe and write ``log_opened``.

        ``AuditLog.open(path, key_path=..., origin=..., ...)`` is shorthand for
        ``AuditLog.open(AuditSettings(path, key_path, hmac_key_path or
        <key dir>/args.hmac, origin=..., ...))``. With ``sign_entries`` every entry
        is also signed into ``<log>.sigs`` (see :mod:`vak.audit.entrysig`);
        ``log_opened`` then says ``"entry_sigs": true`` so a verifier insists on them.

        Raises:
            AuditIntegrityError: the files are damaged in a way recovery must not
                hide, or the key is not the one the log is bound to.
            AuditError: bad fsync policy, bad origin, the log is held by another
                process (without ``multiprocess``), or an I/O error.
            KeyFileError: the key file is unusable or too permissive.
        """
        if not isinstance(settings, AuditSettings):
            settings = _settings_for(settings, key_path, origin, {
                "fsync": fsync, "hmac_key_path": hmac_key_path, "multiprocess": multiprocess,
                "checkpoint_interval_ms": checkpoint_interval_ms, "sign_entries": sign_entries,
            })
        elif any(v is not None for v in (key_path, origin, fsync, hmac_key_path, multiprocess,
                                          checkpoint_interval_ms, sign_entries)):
            raise AuditError("AuditLog.open(settings) takes no other options; "
                             "use dataclasses.replace(settings, ...)")
        self = cls()
        try:
            self._open(settings)
        except OSError as exc:
            self._release()
            raise AuditError(f"{settings.log}: cannot open the audit log: {exc}",
                             file=str(settings.log), fix="check the path, its permissions and "
                             "free space") from exc
        except BaseException:
            self._release()
            raise
        return self

    def _open(self, s: AuditSettings) -> None:
        origin = s.origin
        if not origin or any(c.isspace() or not c.isprintable() for c in origin) \
                or "+" in origin:
            raise AuditError(f"audit origin {origin!r} must be non-empty, printable, without "
                             "spaces or '+'", field="audit.origin")
        self.settings = s
        self.path = Path(s.log)
        self.checkpoint_path = checkpoint_path_for(self.path)
        self.origin = origin
        self.key_path = Path(s.key)
        self._batch = parse_fsync(s.fsync)
        self.fsync_policy = s.fsync
        self._interval = max(s.checkpoint_interval_ms, 1) / 1000
        self._mp = s.multiprocess
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lockfd = os.open(_lock_path_for(self.path), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | (0 if s.multiprocess else fcntl.LOCK_NB))
        except BlockingIOError:
            raise AuditError(
                f"{self.path}: audit log is in use by another process",
                file=str(self.path), fix="one kernel per log; give each kernel its own audit.log",
            ) from None
        try:
            if not self.key_path.exists() and self.path.is_file() \
                    and self.path.stat().st_size > 0:
                # never mint a key for a log that already exists: it is bound to its own
                raise self._integrity(
                    f"{self.key_path}: no key file, but {self.path} already holds entries bound "
                    "to its key", file=self.key_path,
                    fix=f"restore the log's key to {self.key_path}, or start a new log (new "
                    "audit.log and origin)")
            self._key = load_or_create_private_key(self.key_path)
            self._hmac_key = load_or_create_secret(s.hmac_key)
            self._keyed = KeyedDigest(self._hmac_key)  # key schedule done once
            found = self._recover()
            staged = self._check_key(found)
            self._check_newest_checkpoint(found)
            self._vkey = verifier_key(origin, public_bytes(self._key))
            self.public_key_path = export_public(self.key_path, self._vkey)
            self._size, self._offset, self._prev = found.size, found.offset, found.prev
            self._durable = found.size
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if s.sign_entries:
                self._entry_signer = self._open_signer()
            self._ckfd = os.open(self.checkpoint_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                 0o644)
            with self._lock:
                for dropped in found.dropped:
                    self._append_locked("recovered", dropped)
                self._append_locked("log_opened", {
                    "key_id": self.key_id, "vkey": self._vkey,
                    "fsync": s.fsync, "pid": os.getpid(),
                    **({"entry_sigs": True} if s.sign_entries else {}),
                })
            self._commit()
            self._checkpoint()
            if staged is not None:
                self._install_key(staged)
        finally:
            if s.multiprocess:
                fcntl.flock(self._lockfd, fcntl.LOCK_UN)
        self._ticker = threading.Thread(target=self._tick, name="vak-audit-commit", daemon=True)
        self._ticker.start()

    # ------------------------------------------------------------------ recovery
    def _integrity(self, message: str, **details: Any) -> AuditIntegrityError:
        return AuditIntegrityError(message, file=str(details.pop("file", self.path)),
                                   fix=details.pop("fix", "run `vak-audit verify` on the log; "
                                                   "do not append to a damaged log"), **details)

    def _recover(self) -> _Recovery:
        """Check the log and checkpoints on disk, rebuild the tree, cut torn tails.

        Raises:
            AuditIntegrityError: damage that is not a torn last line beyond the
                last checkpoint.
        """
        found = _Recovery()
        self._tree = TreeFile.create_anonymous(self.path.parent)
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            end = _end_of_last_line(fd, size)
            scan = self._scan(fd, 0, end, 0, ZERO_HASH)
            tail = os.pread(fd, size - end, end) if size > end else b""
        finally:
            os.close(fd)
        found.size, found.offset, found.prev = scan.size, end, scan.last_hex
        found.key_events = scan.key_events
        found.checkpoints, last, ck_drop = self._read_own_checkpoints()
        if last > found.size:
            raise self._integrity(
                f"{self.path}: log holds {found.size} entries but a checkpoint covers {last}; "
                "entries were lost or truncated after being signed",
                fix="investigate with `vak-audit verify`; do not reuse this log, start a new "
                "one with a new origin")
        if tail:
            self._truncate(self.path, end)
            found.dropped.append({"dropped_bytes": len(tail),
                                  "dropped_sha256": sha256(tail).hexdigest(),
                                  "dropped_offset": end, "after_seq": found.size - 1})
        if ck_drop is not None:
            found.dropped.append(ck_drop)
        return found

    def _scan(self, fd: int, start: int, end: int, first_seq: int, prev: str) -> StreamScan:
        """Check lines ``[start, end)`` continuing the chain; their leaves go to the tree."""
        leaves = bytearray()
        scan = scan_stream(fd, start, end, first_seq=first_seq, prev=prev, origin=self.origin,
                           on_leaves=leaves.extend if start else self._add_leaves)
        if scan is None:
            raise self._locate_damage(fd, start, end, first_seq, prev)
        self._pending += leaves
        return scan

    def _add_leaves(self, leaves: bytes) -> None:
        assert self._tree is not None
        self._tree.extend(leaves)

    def _locate_damage(self, fd: int, start: int, end: int, seq: int,
                       prev: str) -> AuditIntegrityError:
        """The first line of ``[start, end)`` that breaks the profile or the chain, named."""
        number, offset = seq, start
        for raw in _lines(fd, start, end):
            problem = _line_problem(raw, seq, prev, self.origin)
            if problem is not None:
                return self._integrity(f"{self.path}: line {number + 1} (byte offset {offset}): "
                                       f"{problem}", line=number + 1, offset=offset)
            prev = sha256(b"\x00" + raw).hexdigest()
            seq, number, offset = seq + 1, number + 1, offset + len(raw) + 1
        return self._integrity(f"{self.path}: log changed while it was being read")

    def _read_own_checkpoints(
            self) -> tuple[list[SignedCheckpoint], int, dict[str, Any] | None]:
        """This log's checkpoints, the largest size, and the torn last line cut (if any).

        Raises:
            AuditIntegrityError: a complete line is not a checkpoint of this origin.
        """
        path = self.checkpoint_path
        data = path.read_bytes() if path.exists() else b""
        end = data.rfind(b"\n") + 1
        cps: list[SignedCheckpoint] = []
        offset = 0
        for number, raw in enumerate(data[:end].split(b"\n")[:-1], 1):
            try:
                cp = parse_checkpoint_line(raw + b"\n")
            except CheckpointSignatureError as exc:
                raise self._integrity(f"{path}: line {number} (byte offset {offset}) is not a "
                                      f"checkpoint: {exc.message}", file=path, line=number
                                      ) from None
            if cp.checkpoint.origin != self.origin:
                raise self._integrity(f"{path}: line {number} is a checkpoint of another log "
                                      f"(origin {cp.checkpoint.origin!r})", file=path,
                                      line=number)
            cps.append(cp)
            offset += len(raw) + 1
        last = max((cp.checkpoint.size for cp in cps), default=0)
        if end == len(data):
            return cps, last, None
        tail = data[end:]
        self._truncate(path, end)
        return cps, last, {"file": "checkpoint", "dropped_bytes": len(tail),
                           "dropped_sha256": sha256(tail).hexdigest(), "dropped_offset": end}

    @staticmethod
    def _truncate(path: Path, end: int) -> None:
        with open(path, "r+b") as f:
            f.truncate(end)
            _fsync(f.fileno())

    # ------------------------------------------------------------------ key pinning
    def _check_key(self, found: _Recovery) -> Ed25519PrivateKey | None:
        """Refuse a key the log is not bound to; return a staged key a rotation left.

        The first ``log_opened`` binds its ``vkey``; each ``key_rotated`` moves the
        binding once a checkpoint signed by the old key covers it (what
        :meth:`rotate_key` writes before the new key signs anything).

        Raises:
            AuditIntegrityError: the loaded key is not the bound key (and no
                staged key completes an interrupted rotation), or the rotation
                entries do not form one chain.
        """
        events = sorted(found.key_events, key=lambda e: int(e["seq"]))
        opened = next((e for e in events if e.get("kind") == "log_opened"), None)
        if opened is None:
            if found.size:
                raise self._integrity(f"{self.path}: {found.size} entries but no log_opened "
                                      "entry binds the log's key")
            return None  # a new log: this first log_opened binds our key
        opened_id, bound_vkey = opened.get("key_id"), opened.get("vkey")
        if type(opened_id) is not str or type(bound_vkey) is not str:
            raise self._integrity(f"{self.path}: the first log_opened entry (seq "
                                  f"{opened.get('seq')}) does not name its key")
        bound = self._parse_bound(bound_vkey, opened)
        bound_id = _note_id(bound)
        if opened_id != bound_id.hex():
            raise self._integrity(f"{self.path}: the first log_opened entry's key_id "
                                  f"{short_repr(opened_id)} is not the id of its vkey")
        self._chain = [bound]
        unconfirmed: dict[str, Any] | None = None
        for e in (e for e in events if e.get("kind") == "key_rotated"):
            if unconfirmed is not None or e["old_key_id"] != bound_id.hex():
                raise self._integrity(
                    f"{self.path}: key_rotated at seq {e['seq']} does not continue from the "
                    f"log's key {bound_id.hex()}")
            if _confirmed(e["seq"], bound, found.checkpoints):
                bound = self._parse_bound(e["new_vkey"], e)
                bound_id = _note_id(bound)
                self._chain.append(bound)
            else:
                unconfirmed = e
        ours = key_id(self.origin, public_bytes(self._key))
        staged_path = _staged_key_path(self.key_path)
        staged = load_or_create_private_key(staged_path) if staged_path.exists() else None
        staged_id = None if staged is None else key_id(self.origin, public_bytes(staged))
        if unconfirmed is not None:
            # crashed after writing key_rotated, before its old-key checkpoint: finish it
            if ours == bound_id and staged is not None \
                    and staged_id is not None and staged_id.hex() == unconfirmed["new_key_id"]:
                return staged
            raise self._integrity(
                f"{self.path}: key_rotated at seq {unconfirmed['seq']} is not confirmed by a "
                f"checkpoint of the old key and its new key is not staged at {staged_path}")
        if ours == bound_id:
            return None
        if staged is not None and staged_id == bound_id:
            self._key = staged  # crashed after the rotation's checkpoint, before install
            self._install_key_file(staged_path)
            return None
        raise self._integrity(
            f"{self.key_path}: key {ours.hex()} is not the key this log is bound to "
            f"({bound_id.hex()}, {bound.vkey}); appending under it would hide the "
            "log's history behind a new key", file=self.key_path,
            fix=f"restore the log's key to {self.key_path}, or start a new log (new "
            "audit.log and origin) for the new key; keys change only by AuditLog.rotate_key")

    def _check_newest_checkpoint(self, found: _Recovery) -> None:
        """The newest checkpoint must match the log and be signed by one of the log's keys.

        Raises:
            AuditIntegrityError: the log was changed after that checkpoint was
                signed, or the checkpoint is not by a key the log is bound to.
        """
        if not found.checkpoints:
            return
        cp = max(found.checkpoints, key=lambda c: c.checkpoint.size)
        size = cp.checkpoint.size
        assert self._tree is not None
        if self._tree.root(size) != cp.checkpoint.root:
            raise self._integrity(
                f"{self.path}: entries up to seq {size - 1} do not match the newest signed "
                f"checkpoint (size {size}): the log was changed after it was signed")
        if self._chain:
            try:
                verify_checkpoint(cp, self._chain)
            except AuditVerificationError as exc:
                raise self._integrity(
                    f"{self.checkpoint_path}: the newest checkpoint (size {size}) is not signed "
                    f"by the log's key: {exc.message}", file=self.checkpoint_path) from None

    def _parse_bound(self, vkey: Any, entry: Mapping[str, Any]) -> TrustedKey:
        try:
            key = parse_verifier_key(vkey) if isinstance(vkey, str) else None
        except KeyFileError:
            key = None
        if key is None or key.name != self.origin:
            raise self._integrity(f"{self.path}: the {entry.get('kind')} entry at seq "
                                  f"{entry.get('seq')} does not name a verifier key of "
                                  f"{self.origin!r}")
        return key

    def rotate_key(self) -> str:
        """Switch to a fresh key, recorded in the log and verifiable across the change.

        Order (each step survives a crash, completed on the next open): stage
        the new key at ``<key>.next``; append ``key_rotated`` naming it; make it
        durable and sign a checkpoint covering it with the *old* key; keep the
        old key as ``<key>.retired-<id>`` and install the new one; sign the same
        tree with the new key. Returns the new verifier key.

        Raises:
            AuditError: the log is closed or failed (nothing rotated).
        """
        with self._sync_lock:
            self._raise_if_unusable()
            new = generate_private_key()
            new_vkey = verifier_key(self.origin, public_bytes(new))
            self._guard("staging the new key",
                        lambda: write_private_file(_staged_key_path(self.key_path), _pem(new),
                                                   exclusive=False))
            self.append("key_rotated", {
                "old_key_id": self.key_id, "new_key_id": new_vkey.split("+")[1],
                "new_vkey": new_vkey,
            })
            self._commit()
            self._checkpoint()
            self._install_key(new)
            return new_vkey

    def _install_key(self, new: Ed25519PrivateKey) -> None:
        """Retire the old key file, install the staged one, sign the tree with the new key."""
        old_id = self.key_id
        retired = self.key_path.with_name(f"{self.key_path.name}.retired-{old_id}")

        def install() -> None:
            with contextlib.suppress(FileExistsError):
                os.link(self.key_path, retired)
            self._install_key_file(_staged_key_path(self.key_path))

        self._guard("installing the new key", install)
        with self._ckpt_lock, self._lock:
            self._key = new
            self._vkey = verifier_key(self.origin, public_bytes(new))
            if self._entry_signer is not None:
                self._entry_signer.rekey(new)
        self._guard("exporting the new public key",
                    lambda: export_public(self.key_path, self._vkey))
        self._checkpoint()

    def _install_key_file(self, staged: Path) -> None:
        os.replace(staged, self.key_path)
        dfd = os.open(self.key_path.parent, os.O_RDONLY)
        try:
            _fsync(dfd)
        finally:
            os.close(dfd)

    # ------------------------------------------------------------------ write
    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False,
               flush: bool = False) -> AuditRef:
        """Append one entry.

        ``durable``: return only once it is on stable storage (see the module
        docstring). ``flush``: return only once it (and everything before it) is
        handed to the OS, so a crash of this process cannot lose it; the kernel
        uses it before acknowledging an invocation.

        Raises:
            CanonicalError: unknown kind, missing field, header field set by the
                caller, or a value outside the profile (too deep included).
            AuditError: the log is closed, or an I/O error poisoned it (now or before).
        """
        required = _REQUIRED.get(kind)
        if required is None or not fields.keys() >= required:
            check_fields(kind, fields)  # raises with the precise reason
        with self._lock:
            if self._closed or self._failed is not None:
                self._raise_if_unusable()
            if self._mp:
                self._mp_lock()
                try:
                    self._resync()
                    ref = self._append_locked(kind, fields)
                    self._write_out()
                finally:
                    self._mp_unlock()
            else:
                ref = self._append_locked(kind, fields)
                if flush and not durable:
                    self._write_out()
        if durable:
            self._wait_durable(ref.seq)
        return ref

    def _append_locked(self, kind: str, fields: Mapping[str, Any]) -> AuditRef:
        # The hot path (twice per host call): one dict, one orjson pass, one type walk
        # over the caller's values only, one SHA-256 from a pre-fed 0x00 prefix, and
        # the time from a per-second cached prefix; everything else is precomputed.
        seq = self._size
        us = _time_ns() // 1000
        if not 0 <= us - self._sec_us < 1_000_000:
            self._sec_us = us - us % 1_000_000
            self._sec_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(us // 1_000_000))
        us -= self._sec_us
        header = {"v": FORMAT_VERSION, "origin": self.origin, "seq": seq,
                  "time": f"{self._sec_text}{_DIGITS3[us // 1000]}{_DIGITS3[us % 1000]}Z",
                  "kind": kind, "prev": self._prev}
        header.update(fields)
        if len(header) != len(fields) + _NHEADER:  # the caller tried to set a header field
            check_fields(kind, fields)
        try:
            line = _dumps(header, default=unseal, option=ENTRY_OPTS)
        except TypeError:
            line = b""
        try:
            if not line or not line.isascii() or needs_exact(fields):
                line = encode_checked(fields, header)[:-1]  # exact check; raises if outside
        except RecursionError:
            raise CanonicalError(f"{kind} entry nests too deeply for the audit log") from None
        h = _LEAF_PREFIX.copy()
        h.update(line)
        digest = h.digest()
        buf = self._buf
        buf += line
        buf += b"\n"
        self._pending += digest
        self._prev = hexed = digest.hex()
        self._size = seq + 1
        self._offset += len(line) + 1
        if self._entry_signer is not None:
            self._guard("signing the entry", lambda: self._entry_signer.sign(  # type: ignore[union-attr]
                seq, digest))
        if len(buf) >= _BUF_LIMIT:
            self._write_out()
        ref = _new_ref(AuditRef)
        _set_ref_seq(ref, seq)
        _set_ref_hash(ref, hexed)
        return ref

    def _write_out(self) -> None:
        """Hand buffered lines (and entry signatures) to the OS (caller holds ``_lock``)."""
        data = self._buf
        if data:
            self._buf = bytearray()
            self._guard("writing audit entries", lambda: _write_all(self._fd, data))
        if self._entry_signer is not None:
            self._guard("writing entry signatures", self._entry_signer.flush)

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        """Run one I/O step; an OSError poisons the writer and raises AuditError."""
        try:
            return action()
        except OSError as exc:
            raise self._poison(f"{what}: {exc}") from exc

    def _poison(self, cause: str) -> AuditError:
        """Mark the writer failed (first cause wins), wake every waiter, return the error."""
        with self._durable_cv:
            if self._failed is None:
                self._failed = cause
                _log.error("audit log %s failed, refusing every later append: %s",
                           self.path, cause)
            self._durable_cv.notify_all()
        return self._unusable_error()

    def _unusable_error(self) -> AuditError:
        if self._failed is not None:
            return AuditError(
                f"{self.path}: audit log failed ({self._failed}); every append is refused",
                file=str(self.path), fix="fix the disk (space, permissions, health) and restart "
                "the kernel; the log recovers its torn tail on open")
        return AuditError(f"{self.path}: audit log is closed", file=str(self.path))

    def _raise_if_unusable(self) -> None:
        if self._closed or self._failed is not None:
            raise self._unusable_error()

    def _mp_lock(self) -> None:
        self._guard("locking the log", lambda: fcntl.flock(self._lockfd, fcntl.LOCK_EX))

    def _mp_unlock(self) -> None:
        self._guard("unlocking the log", lambda: fcntl.flock(self._lockfd, fcntl.LOCK_UN))

    def _resync(self) -> None:
        """(multiprocess) take in whatever another process appended since our last look."""
        size = self._guard("reading the log size", lambda: os.fstat(self._fd).st_size)
        if size == self._offset:
            return
        fd = self._guard("reading the log", lambda: os.open(self.path, os.O_RDONLY))
        try:
            end = _end_of_last_line(fd, size)
            if end <= self._offset:
                return
            try:
                scan = self._scan(fd, self._offset, end, self._size, self._prev)
            except AuditIntegrityError as exc:
                raise self._poison(f"another writer's entries do not continue the chain: "
                                   f"{exc.message}") from None
        finally:
            os.close(fd)
        self._size, self._prev, self._offset = scan.size, scan.last_hex, end

    def _open_signer(self) -> EntrySigner:
        """The sidecar signer; records of entries a recovery cut are cut as well."""
        path = sigs_path_for(self.path)
        keep = next((r.offset for r in read_entry_sigs(path)
                     if r.seq is None or r.seq >= self._size), None)
        if keep is not None:
            self._truncate(path, keep)
        return EntrySigner(path, self.origin, self._key, unbuffered=self._mp)

    # ------------------------------------------------------------------ commit
    def _commit(self, upto: int | None = None) -> None:
        """The one group commit: write out, fsync, extend the tree, advance ``durable``.

        With ``upto``, return at once if entry ``upto`` is already durable (a
        strict-mode waiter whose entry a concurrent commit covered).

        Raises:
            AuditError: the log is failed or closed, or this commit's I/O failed.
        """
        with self._sync_lock:
            if upto is not None and self._durable > upto:
                return
            with self._lock:
                self._raise_if_unusable()
                if self._mp:
                    self._mp_lock()
                    try:
                        if not self._buf:  # (buffered lines exist only while opening)
                            self._resync()
                        self._write_out()
                    finally:
                        self._mp_unlock()
                else:
                    self._write_out()
                size = self._size
            if size > self._durable:
                self._guard("fsync of the log", lambda: _fsync(self._fd))
                if self._entry_signer is not None:
                    self._guard("fsync of entry signatures", self._entry_signer.sync)
                with self._durable_cv:
                    self._durable = max(self._durable, size)
                    self._durable_cv.notify_all()

    def _extend_tree(self) -> TreeFile:
        """Feed the leaves appended so far to the tree (caller holds ``_tree_lock``).

        Off the append and durability paths: each checkpoint (at most one per
        ``checkpoint_interval_ms``, and one is due whenever entries are waiting)
        and each proof feeds what is pending, so pending leaves span one interval.
        """
        with self._lock:
            pending, self._pending = self._pending, bytearray()
        tree = self._tree
        assert tree is not None
        if pending:
            self._guard("writing the Merkle node file", lambda: tree.extend(pending))
        return tree

    def _wait_durable(self, seq: int) -> None:
        if self._batch is None:
            self._commit(seq)  # the ticker signs the checkpoint, off the caller's path
            return
        wait = min(self._batch * 2, 0.25)
        with self._durable_cv:
            while self._durable <= seq and self._failed is None and not self._closed:
                self._durable_cv.wait(wait)
        if self._durable <= seq:
            raise self._unusable_error()

    def _tick(self) -> None:
        period = self._batch if self._batch is not None else self._interval
        while not self._stop.wait(period):
            try:
                if self._closed or self._failed is not None:
                    return
                self._commit()
                if self._checkpoint_due():
                    self._checkpoint()  # feeds the tree: pending leaves span one interval
            except AuditError:
                return  # poisoned (already logged) or closing: nothing left to commit
            except Exception as exc:  # noqa: BLE001 - reported or converted, never hidden
                # a defect, not an I/O error: still fail closed, loudly
                _log.exception("audit commit thread of %s crashed", self.path)
                self._poison(f"commit thread crashed: {type(exc).__name__}: {exc}")
                return

    def _checkpoint_due(self) -> bool:
        """Durable entries lack a checkpoint and the last one is ``checkpoint_interval_ms`` old.

        Under light load the first tick after the interval covers every entry;
        under heavy load this caps signatures (and the verifier's work) at one
        per interval instead of one per group fsync.
        """
        return (self._latest is None or self._latest.checkpoint.size < self._durable) \
            and time.monotonic() - self._last_ckpt_at >= self._interval

    def _checkpoint(self) -> SignedCheckpoint:
        """Sign, write and fsync a checkpoint at the durable size.

        Raises:
            AuditError: the log failed (now, writing the checkpoint, or before).
        """
        with self._ckpt_lock:
            if self._failed is not None:
                raise self._unusable_error()
            size = self._durable
            latest = self._latest
            if latest is not None and (latest.checkpoint.size > size or (
                    latest.checkpoint.size == size and latest.key_ids[0] == self.key_id)):
                return latest
            with self._tree_lock:
                tree = self._extend_tree()
                root = self._guard("reading the Merkle node file", lambda: tree.root(size))
            cp = sign_checkpoint(Checkpoint(self.origin, size, root, rfc3339_now()), self._key)
            line = checkpoint_line(cp)
            self._guard("writing a checkpoint", lambda: _write_all(self._ckfd, line))
            self._guard("fsync of the checkpoint file", lambda: _fsync(self._ckfd))
            self._latest = cp
            self._last_ckpt_at = time.monotonic()
            if self._listeners:
                self._notices.put((cp, None))
            return cp

    # ------------------------------------------------------------------ listeners
    def add_checkpoint_listener(self, callback: CheckpointListener) -> None:
        """Call ``callback(signed_checkpoint)`` for every checkpoint signed from now on.

        The newest checkpoint so far is delivered first. Calls run in order on
        one notifier thread, never on the append path; an exception is logged
        (``vak.audit.log``, with traceback) and does not stop later calls. Meant
        for witnesses and gossip (see ``vak.fleet``).
        """
        with self._ckpt_lock:
            self._listeners.append(callback)
            if self._notifier is None:
                self._notifier = threading.Thread(target=self._notify, daemon=True,
                                                  name="vak-audit-checkpoints")
                self._notifier.start()
            if self._latest is not None:
                self._notices.put((self._latest, callback))

    def _notify(self) -> None:
        while (notice := self._notices.get()) is not None:
            cp, only = notice
            for callback in [only] if only is not None else list(self._listeners):
                try:
                    callback(cp)
                except Exception:  # noqa: BLE001 - a listener's defect must not stop the others
                    _log.exception("checkpoint listener %r failed on %s size %d", callback,
                                   cp.checkpoint.origin, cp.checkpoint.size)

    # ------------------------------------------------------------------ API
    @property
    def size(self) -> int:
        """Number of entries appended so far (by this process's view)."""
        return self._size

    @property
    def key_id(self) -> str:
        return key_id(self.origin, public_bytes(self._key)).hex()

    @property
    def failed(self) -> bool:
        """True once an I/O error poisoned the writer (every append now raises)."""
        return self._failed is not None

    @property
    def tree_frontier_size(self) -> int:
        """Hashes the writer keeps in memory for its Merkle tree (O(log n))."""
        return 0 if self._tree is None else self._tree.frontier_size

    def args_digest(self, args_bytes: bytes) -> str:
        """``"hmac-sha256:<hex>"`` of bytes with this log's private HMAC key.

        Used for every digest of guest-influenced data the log records (host call
        arguments, results, invocation input and output): equal bytes give equal
        digests within one log (calls can be correlated, and a holder of the bytes
        and the key can confirm them) while the log never reveals them, and unlike
        a plain SHA-256 a small or guessable value cannot be brute-forced from the
        log alone. The algorithm prefix keeps every digest in the log self-describing
        (``sha256:`` for public content such as manifests, ``hmac-sha256:`` here).
        """
        return self._keyed(args_bytes)

    def heartbeat(self) -> AuditRef:
        return self.append("heartbeat", {}, durable=True)

    def checkpoint(self) -> SignedCheckpoint:
        """Make everything durable and sign a checkpoint covering it now.

        Raises:
            AuditError: the log is closed or failed.
        """
        self._commit()
        return self._checkpoint()

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        return self._latest

    def receipt(self, seq: int) -> Receipt:
        """Checkpoint covering ``seq`` plus the inclusion proof (signs a new one if needed).

        Raises:
            AuditError: ``seq`` was never appended, or the log failed.
        """
        if type(seq) is not int or not 0 <= seq < self._size:
            raise AuditError(f"no audit entry with seq {seq} (log has {self._size})")
        cp = self._latest
        if cp is None or cp.checkpoint.size <= seq:
            cp = self.checkpoint()
        size = cp.checkpoint.size
        with self._tree_lock:
            tree = self._extend_tree()
            proof, leaf = self._guard("reading the Merkle node file", lambda: (
                tuple(tree.inclusion_proof(seq, size)), tree.leaf(seq)))
        return Receipt(seq, leaf, proof, cp)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof between two durable sizes.

        Raises:
            AuditError: the log failed; ValueError: sizes outside the durable tree.
        """
        self._commit()
        with self._tree_lock:
            tree = self._extend_tree()
            proof: list[bytes] = self._guard("reading the Merkle node file",
                                             lambda: tree.consistency_proof(size1, size2))
            return proof

    def close(self) -> None:
        """Write ``log_closed``, make it durable, sign the final checkpoint, release files.

        A failed log releases its files without writing (the failure was raised
        to the appenders and logged).
        """
        with self._sync_lock:
            if self._closed:
                return
            try:
                if self._failed is None:
                    self.append("log_closed", {})
                    self._commit()
                    self._checkpoint()
            except AuditError:
                _log.warning("audit log %s closed without its log_closed entry", self.path)
            finally:
                with self._durable_cv:
                    self._closed = True
                    self._durable_cv.notify_all()
                self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        if self._notifier is not None:
            self._notices.put(None)
            self._notifier.join(timeout=5)
        self._release(keep_tree=True)

    def _release(self, *, keep_tree: bool = False) -> None:
        """Close every descriptor this writer opened (idempotent, never raises OSError).

        ``keep_tree``: a closed log still serves receipts of its entries; its
        unnamed node file goes when the log object does.
        """
        if self._entry_signer is not None:
            with contextlib.suppress(OSError):
                self._entry_signer.close()
            self._entry_signer = None
        if self._tree is not None and not keep_tree:
            with contextlib.suppress(OSError):
                self._tree.close()
            self._tree = None
        for name in ("_fd", "_ckfd", "_lockfd"):
            fd = getattr(self, name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)  # closing the lock fd releases the flock
                setattr(self, name, -1)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _note_id(key: TrustedKey) -> bytes:
    """The 4-byte signed-note key id of a log key (from its name and public bytes)."""
    return key_id(key.name, key.public)


def _confirmed(seq: int, old: TrustedKey, cps: list[SignedCheckpoint]) -> bool:
    """Whether a checkpoint covering ``seq`` is validly signed by ``old``."""
    for cp in cps:
        if cp.checkpoint.size <= seq:
            continue
        for name, kid, sig in cp.signatures:
            if name == old.name and kid == _note_id(old):
                try:
                    old.verify(sig, cp.checkpoint.body().encode())
                except InvalidSignature:
                    continue
                return True
    return False


def _end_of_last_line(fd: int, size: int) -> int:
    """Byte offset just after the last newline in the first ``size`` bytes (0 if none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _BLOCK)
        at = os.pread(fd, pos - start, start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        pos = start
    return 0


def _lines(fd: int, start: int, end: int) -> Any:
    """Each line (without its newline) of bytes ``[start, end)``, read in blocks."""
    carry = b""
    pos = start
    while pos < end:
        buf = os.pread(fd, min(_BLOCK, end - pos), pos)
        if not buf:
            break
        pos += len(buf)
        parts = (carry + buf).split(b"\n")
        carry = parts.pop()
        yield from parts
    if carry:
        yield carry


def _line_problem(raw: bytes, seq: int, prev: str, origin: str) -> str | None:
    """Why one line of the writer's own log is not the next entry of its chain."""
    try:
        e = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    problem = entry_problem(e)
    if problem is not None:
        return problem
    if has_float(e):
        return "floats are not allowed in audit entries"
    try:
        if canonical_bytes(e) != raw:
            return "JSON is not in canonical form"
    except CanonicalError as exc:
        return f"outside the canonical profile: {exc}"
    if e["origin"] != origin:
        return f"entry of origin {e['origin']!r}, not {origin!r}"
    if e["seq"] != seq:
        return f"seq {e['seq']} where {seq} continues the chain"
    if e["prev"] != prev:
        return "prev is not the previous entry's hash (the chain is broken)"
    return None
