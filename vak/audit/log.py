"""``AuditLog``: the append-only, hash-chained, checkpointed log of one kernel.

Invariants:

* one log per kernel instance, with its own origin and Ed25519 key; entries
  form one linear chain (seq 0, 1, 2, ...), each ``prev`` = previous leaf hash;
* record, then act: ``append(..., durable=True)`` returns only once the entry
  is on stable storage (``strict``: fsync now, shared by every thread waiting
  at that moment; ``batched:<ms>``: the caller waits for the next group fsync,
  at most ``<ms>`` later);
* a group-commit ticker fsyncs pending entries and signs a checkpoint after
  each durable batch (at most one every ``checkpoint_interval_ms``), so under
  light load every entry is covered within that interval;
* on open, a torn last line is cut only if it lies beyond the last checkpoint,
  and a ``recovered`` entry records what was dropped; anything else that is
  damaged raises :class:`~vak.errors.AuditIntegrityError` (refuse to start);
* threads serialise on a lock; processes on ``fcntl.flock`` of ``<log>.lock``
  (exclusive for the life of the log unless ``multiprocess=True``, which takes
  it per append and re-reads whatever another process wrote).

Example::

    >>> log = AuditLog.open("a/vak.log", key_path="a/log.key", origin="ex/k1")  # doctest: +SKIP
    >>> ref = log.append("heartbeat", {}, durable=True)                         # doctest: +SKIP
    >>> verify_receipt(log.receipt(ref.seq), log.public_key_path)              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from vak.audit.checkpoint import (
    Checkpoint,
    CheckpointSignatureError,
    SignedCheckpoint,
    parse_note,
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
    needs_exact,
    rfc3339_now,
)
from vak.audit.entrysig import EntrySigner, read_entry_sigs, sigs_path_for
from vak.audit.keys import (
    TrustedKey,
    export_public,
    generate_private_key,
    key_id,
    load_or_create_private_key,
    load_or_create_secret,
    load_trusted_keys,
    parse_verifier_key,
    public_bytes,
    retire_private_key,
    verifier_key,
)
from vak.audit.merkle import MerkleTree, verify_inclusion
from vak.audit.sink import AuditRef
from vak.errors import AuditError, AuditIntegrityError, AuditVerificationError

if TYPE_CHECKING:
    from vak.config import KernelConfig

__all__ = [
    "HMAC_PREFIX",
    "AuditLog",
    "Receipt",
    "checkpoint_path_for",
    "read_checkpoints",
    "verify_receipt",
]

#: prefix of every keyed digest in the log (``AuditLog.args_digest``)
HMAC_PREFIX = "hmac-sha256:"


_REQUIRED = {kind: frozenset(names) for kind, names in KINDS.items()}
_NHEADER = len(HEADER_FIELDS)
_dumps = orjson.dumps
_hmac_digest = hmac.digest  # one-shot C HMAC: ~3 us cheaper than hmac.new objects
_time_ns = time.time_ns
_LEAF_PREFIX = sha256(b"\x00")  # RFC 9162 leaf prefix, copied per entry (cheaper than new)
# AuditRef is a frozen dataclass; filling its slots through the member descriptors
# builds the same object at half the cost of the generated __init__ (hot path).
_new_ref = object.__new__
_set_ref_seq = AuditRef.seq.__set__  # type: ignore[attr-defined]
_set_ref_hash = AuditRef.leaf_hash.__set__  # type: ignore[attr-defined]


def checkpoint_path_for(log_path: str | Path) -> Path:
    log_path = Path(log_path)
    return log_path.with_name(log_path.name + ".ckpt")


def _lock_path_for(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".lock")


def parse_fsync(policy: str) -> float | None:
    """``"strict"`` -> None; ``"batched:<ms>"`` -> seconds.

    Raises:
        AuditError: any other spelling.
    """
    if policy == "strict":
        return None
    if policy.startswith("batched:") and policy[8:].isdigit() and 0 < int(policy[8:]) <= 10_000:
        return int(policy[8:]) / 1000
    raise AuditError(f"audit fsync policy {policy!r} is not 'strict' or 'batched:<1..10000 ms>'",
                     field="audit.fsync")


def read_checkpoints(path: str | Path) -> list[tuple[int, SignedCheckpoint | None, str]]:
    """Every ``(byte offset, checkpoint or None if malformed, raw line)`` of a ``.ckpt`` file."""
    path = Path(path)
    if not path.exists():
        return []
    out: list[tuple[int, SignedCheckpoint | None, str]] = []
    offset = 0
    for raw in path.read_bytes().splitlines(keepends=True):
        cp: SignedCheckpoint | None = None
        if raw.endswith(b"\n"):
            with contextlib.suppress(orjson.JSONDecodeError, CheckpointSignatureError,
                                     TypeError, KeyError):
                cp = parse_note(orjson.loads(raw)["note"])
        out.append((offset, cp, raw.decode("utf-8", "replace")))
        offset += len(raw)
    return out


@dataclass(frozen=True, slots=True)
class Receipt:
    """Evidence for one entry: a signed checkpoint and an inclusion proof into it."""

    seq: int
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [p.hex() for p in self.proof],
            "checkpoint": self.checkpoint.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        """Raises: AuditVerificationError when the JSON is not a receipt."""
        try:
            return cls(
                int(data["seq"]), bytes.fromhex(data["leaf_hash"]),
                tuple(bytes.fromhex(p) for p in data["proof"]),
                parse_note(data["checkpoint"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditVerificationError(f"not a receipt: {exc}") from None


def _as_keys(public_key: Any) -> list[TrustedKey]:
    if isinstance(public_key, TrustedKey):
        return [public_key]
    if isinstance(public_key, str) and "+" in public_key and not Path(public_key).exists():
        return [parse_verifier_key(public_key)]
    if isinstance(public_key, str | Path):
        return load_trusted_keys(public_key)
    return list(public_key)


def verify_receipt(
    receipt: Receipt, public_key: TrustedKey | str | Path | Iterable[TrustedKey],
    *, line: bytes | None = None,
) -> None:
    """Check a receipt offline: signature by a trusted key, then the inclusion proof.

    ``public_key`` is a :class:`TrustedKey`, a verifier-key string, a ``.pub`` /
    trust file path, or several keys. With ``line`` the entry itself is checked too.

    Raises:
        AuditVerificationError: (or its subclasses) anything does not verify.
    """
    verify_checkpoint(receipt.checkpoint, _as_keys(public_key))
    if line is not None and sha256(b"\x00" + line.rstrip(b"\n")).digest() != receipt.leaf_hash:
        raise AuditVerificationError(f"entry line does not hash to the receipt's leaf "
                                     f"(seq {receipt.seq})")
    cp = receipt.checkpoint.checkpoint
    verify_inclusion(receipt.leaf_hash, receipt.seq, cp.size, receipt.proof, cp.root)


class AuditLog:
    """The audit log of one kernel. Build it with :meth:`open` or :meth:`from_config`."""

    def __init__(self) -> None:  # use open()
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._ckpt_lock = threading.RLock()
        self._durable_cv = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._tree = MerkleTree()
        self._leaves = self._tree.leaves_buffer
        self._size = 0
        self._offset = 0
        self._durable = 0
        self._prev = ZERO_HASH
        self._latest: SignedCheckpoint | None = None
        self._last_ckpt_at = 0.0
        self._closed = False
        self._ticker: threading.Thread | None = None
        self._entry_signer: EntrySigner | None = None
        self._sec_us = -(1 << 62)  # start of the cached second, in microseconds
        self._sec_text = ""

    # ------------------------------------------------------------------ open
    @classmethod
    def open(
        cls, path: str | Path, *, key_path: str | Path, origin: str, fsync: str = "strict",
        hmac_key_path: str | Path | None = None, multiprocess: bool = False,
        checkpoint_interval_ms: int = 20, sign_entries: bool = False,
    ) -> AuditLog:
        """Open (or create) the log at ``path`` and write ``log_opened``.

        With ``sign_entries`` every entry is also signed, one record per entry in
        the sidecar ``<log>.sigs`` (see :mod:`vak.audit.entrysig`); ``log_opened``
        then says ``"entry_sigs": true`` so a verifier insists on them.

        Raises:
            AuditIntegrityError: the file is damaged in a way recovery must not hide.
            AuditError: bad fsync policy, bad origin, or the log is held by another
                process (without ``multiprocess``).
            KeyFileError: the key file is unusable or too permissive.
        """
        if not origin or any(c.isspace() for c in origin) or "+" in origin:
            raise AuditError(f"audit origin {origin!r} must be non-empty, without spaces or '+'",
                             field="audit.origin")
        self = cls()
        self.path = Path(path)
        self.checkpoint_path = checkpoint_path_for(self.path)
        self.origin = origin
        self.key_path = Path(key_path)
        self._batch = parse_fsync(fsync)
        self.fsync_policy = fsync
        self._interval = max(checkpoint_interval_ms, 1) / 1000
        self._mp = multiprocess
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lockfd = os.open(_lock_path_for(self.path), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | (0 if multiprocess else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self._lockfd)
            raise AuditError(
                f"{self.path}: audit log is in use by another process",
                file=str(self.path), fix="one kernel per log; give each kernel its own audit.log",
            ) from None
        try:
            self._key = load_or_create_private_key(self.key_path)
            self._vkey = verifier_key(origin, public_bytes(self._key))
            self.public_key_path = export_public(self.key_path, self._vkey)
            hmac_path = Path(hmac_key_path) if hmac_key_path else self.key_path.with_name(
                "args.hmac")
            self._hmac_key = load_or_create_secret(hmac_path)
            dropped = self._load()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._file = os.fdopen(self._fd, "ab", buffering=0 if multiprocess else 1 << 16)
            if sign_entries:
                self._entry_signer = self._open_signer()
            self._ckfd = os.open(self.checkpoint_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                 0o644)
            if dropped is not None:
                self._append_locked("recovered", dropped)
            self._append_locked("log_opened", {
                "key_id": key_id(origin, public_bytes(self._key)).hex(), "vkey": self._vkey,
                "fsync": fsync, "pid": os.getpid(),
                **({"entry_sigs": True} if sign_entries else {}),
            })
            self._commit_locked()
            self._checkpoint_locked()
        finally:
            if multiprocess:
                fcntl.flock(self._lockfd, fcntl.LOCK_UN)
        self._ticker = threading.Thread(target=self._tick, name="vak-audit-commit", daemon=True)
        self._ticker.start()
        return self

    @classmethod
    def from_config(cls, cfg: KernelConfig) -> AuditLog:
        """Open the log a :class:`KernelConfig` describes (paths with defaults applied)."""
        return cls.open(
            cfg.resolved("audit_log"), key_path=cfg.resolved("audit_key"),
            origin=cfg.audit_origin, fsync=cfg.audit_fsync,
            hmac_key_path=cfg.resolved("audit_hmac_key"),
        )

    def _load(self) -> dict[str, Any] | None:
        """Rebuild state from disk; cut a torn tail beyond the last checkpoint."""
        data = self.path.read_bytes() if self.path.exists() else b""
        end = data.rfind(b"\n") + 1
        tail = data[end:]
        self._ingest(data[:end])
        last = max((cp.checkpoint.size for _, cp, _ in read_checkpoints(self.checkpoint_path)
                    if cp is not None and cp.checkpoint.origin == self.origin), default=0)
        if last > self._size:
            raise AuditIntegrityError(
                f"{self.path}: log holds {self._size} entries but a checkpoint covers {last}; "
                "entries were lost or truncated after being signed",
                file=str(self.path), fix="investigate with `vak-audit verify`; do not reuse "
                "this log, start a new one with a new origin",
            )
        if not tail:
            return None
        if self._size < last:  # unreachable: kept for clarity of the rule
            raise AuditIntegrityError(f"{self.path}: torn line inside the checkpointed prefix")
        with open(self.path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())
        self._offset = end
        return {"dropped_bytes": len(tail), "dropped_sha256": sha256(tail).hexdigest(),
                "dropped_offset": end, "after_seq": self._size - 1}

    def _ingest(self, chunk: bytes) -> None:
        """Add complete lines written to disk (by us before, or another process)."""
        if not chunk:
            return
        lines = chunk.split(b"\n")[:-1]
        for line in lines:
            self._tree.append(sha256(b"\x00" + line).digest())
        try:
            last = orjson.loads(lines[-1])
            ok = last["seq"] == self._size + len(lines) - 1 and last["origin"] == self.origin
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            raise AuditIntegrityError(
                f"{self.path}: last entry does not continue the chain (expected seq "
                f"{self._size + len(lines) - 1} of origin {self.origin!r})",
                file=str(self.path), fix="run `vak-audit verify` on the log",
            )
        self._size += len(lines)
        self._offset += len(chunk)
        self._prev = self._tree.leaf(self._size - 1).hex()

    # ------------------------------------------------------------------ write
    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False) -> AuditRef:
        """Append one entry; with ``durable`` return only once it is on stable storage.

        Raises:
            CanonicalError: unknown kind, missing field, header field set by the
                caller, or a value outside the profile.
            AuditError: the log is closed or the disk write failed.
        """
        required = _REQUIRED.get(kind)
        if required is None or not fields.keys() >= required:
            check_fields(kind, fields)  # raises with the precise reason
        with self._lock:
            if self._closed:
                raise AuditError(f"{self.path}: audit log is closed")
            if self._mp:
                fcntl.flock(self._lockfd, fcntl.LOCK_EX)
                try:
                    self._resync()
                    ref = self._append_locked(kind, fields)
                    if durable:
                        self._fsync_files()
                        self._durable = max(self._durable, self._size)
                finally:
                    fcntl.flock(self._lockfd, fcntl.LOCK_UN)
                return ref
            ref = self._append_locked(kind, fields)
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
        header = {"v": FORMAT_VERSION, "origin": self.origin, "seq": seq,
                  "time": f"{self._sec_text}{us - self._sec_us:06d}Z", "kind": kind,
                  "prev": self._prev}
        header.update(fields)
        if len(header) != len(fields) + _NHEADER:  # the caller tried to set a header field
            check_fields(kind, fields)
        try:
            line = _dumps(header, option=ENTRY_OPTS)
        except TypeError:
            line = b""
        if not line or not line.isascii() or needs_exact(fields):
            line = encode_checked(fields, header)[:-1]  # exact check; raises if outside
        h = _LEAF_PREFIX.copy()
        h.update(line)
        digest = h.digest()
        line += b"\n"
        try:
            self._file.write(line)
        except OSError as exc:
            raise AuditError(f"{self.path}: cannot write audit entry: {exc}") from exc
        self._leaves += digest
        self._prev = hexed = digest.hex()
        self._size = seq + 1
        self._offset += len(line)
        if self._entry_signer is not None:
            self._entry_signer.sign(seq, digest)
        ref = _new_ref(AuditRef)
        _set_ref_seq(ref, seq)
        _set_ref_hash(ref, hexed)
        return ref

    def _resync(self) -> None:
        """(multiprocess) take in whatever another process appended since our last look."""
        size = os.fstat(self._fd).st_size
        if size != self._offset:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(size - self._offset)
            self._ingest(chunk[: chunk.rfind(b"\n") + 1])

    def _open_signer(self) -> EntrySigner:
        """The sidecar signer; records of entries a recovery cut are cut as well."""
        path = sigs_path_for(self.path)
        keep = next((r.offset for r in read_entry_sigs(path)
                     if r.seq is None or r.seq >= self._size), None)
        if keep is not None:
            with open(path, "r+b") as f:
                f.truncate(keep)
                os.fsync(f.fileno())
        return EntrySigner(path, self.origin, self._key, unbuffered=self._mp)

    def _flush_buffers(self) -> None:
        """Hand buffered lines (and entry signatures) to the OS (caller holds the lock)."""
        self._file.flush()
        if self._entry_signer is not None:
            self._entry_signer.flush()

    def _fsync_files(self) -> None:
        os.fsync(self._fd)
        if self._entry_signer is not None:
            self._entry_signer.sync()

    def _commit_locked(self) -> None:
        self._flush_buffers()
        self._fsync_files()
        self._durable = max(self._durable, self._size)

    def _wait_durable(self, seq: int) -> None:
        if self._batch is not None:
            with self._durable_cv:
                while self._durable <= seq and not self._closed:
                    self._durable_cv.wait(self._batch * 2)
            return
        with self._sync_lock:
            if self._durable > seq:
                return
            with self._lock:
                self._flush_buffers()
                size = self._size
            self._fsync_files()
            self._durable = max(self._durable, size)
            if time.monotonic() - self._last_ckpt_at >= self._interval:
                self._checkpoint_locked()

    def _tick(self) -> None:
        period = self._batch if self._batch is not None else self._interval
        while not self._stop.wait(period):
            try:
                self._flush_and_checkpoint()
            except Exception:
                if self._closed:
                    return

    def _flush_and_checkpoint(self) -> None:
        if self._mp:
            with self._lock:
                if self._closed:
                    return
                fcntl.flock(self._lockfd, fcntl.LOCK_EX)
                try:
                    self._resync()
                    if self._size > self._durable:
                        self._commit_locked()
                    if self._checkpoint_due():
                        self._checkpoint_locked()
                finally:
                    fcntl.flock(self._lockfd, fcntl.LOCK_UN)
            return
        # Single writer: fsync and signing happen outside the append lock, so appends
        # keep flowing into the page cache while the group commit is on its way to disk.
        with self._sync_lock:
            with self._lock:
                if self._closed:
                    return
                self._flush_buffers()
                size = self._size
            if size > self._durable:
                self._fsync_files()
                self._durable = max(self._durable, size)
                with self._durable_cv:
                    self._durable_cv.notify_all()
            if self._checkpoint_due():
                self._checkpoint_locked()

    def _checkpoint_due(self) -> bool:
        """Durable entries lack a checkpoint and the last one is ``checkpoint_interval_ms`` old.

        Under light load the first tick after the interval covers every entry;
        under heavy load this caps signatures (and the verifier's work) at one
        per interval instead of one per group fsync.
        """
        return (self._latest is None or self._latest.checkpoint.size < self._durable) \
            and time.monotonic() - self._last_ckpt_at >= self._interval

    def _checkpoint_locked(self) -> SignedCheckpoint:
        """Sign and store a checkpoint at the durable size (caller holds a lock)."""
        with self._ckpt_lock:
            size = self._durable
            if self._latest is not None and (self._latest.checkpoint.size > size or (
                    self._latest.checkpoint.size == size
                    and self._latest.key_ids[0] == self.key_id)):
                return self._latest
            cp = sign_checkpoint(
                Checkpoint(self.origin, size, self._tree.root(size), rfc3339_now()), self._key)
            os.write(self._ckfd, orjson.dumps({"note": cp.note}) + b"\n")
            self._latest = cp
            self._last_ckpt_at = time.monotonic()
            return cp

    # ------------------------------------------------------------------ API
    @property
    def size(self) -> int:
        """Number of entries appended so far (by this process's view)."""
        return self._size

    @property
    def key_id(self) -> str:
        return key_id(self.origin, public_bytes(self._key)).hex()

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
        return HMAC_PREFIX + _hmac_digest(self._hmac_key, args_bytes, "sha256").hex()

    def heartbeat(self) -> AuditRef:
        return self.append("heartbeat", {}, durable=True)

    def checkpoint(self) -> SignedCheckpoint:
        """Make everything durable and sign a checkpoint covering it now."""
        with self._lock:
            if self._mp:
                fcntl.flock(self._lockfd, fcntl.LOCK_EX)
            try:
                if self._mp:
                    self._resync()
                self._commit_locked()
                return self._checkpoint_locked()
            finally:
                if self._mp:
                    fcntl.flock(self._lockfd, fcntl.LOCK_UN)

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        return self._latest

    def receipt(self, seq: int) -> Receipt:
        """Checkpoint covering ``seq`` plus the inclusion proof (signs a new one if needed).

        Raises:
            AuditError: ``seq`` was never appended.
        """
        if not 0 <= seq < self._size:
            raise AuditError(f"no audit entry with seq {seq} (log has {self._size})")
        with self._lock:
            cp = self._latest
            if cp is None or cp.checkpoint.size <= seq:
                cp = self.checkpoint()
            size = cp.checkpoint.size
            proof = tuple(self._tree.inclusion_proof(seq, size))
            return Receipt(seq, self._tree.leaf(seq), proof, cp)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self._lock:
            return self._tree.consistency_proof(size1, size2)

    def rotate_key(self) -> str:
        """Switch to a fresh key, recorded in the log and verifiable across the change.

        The ``key_rotated`` entry names the new verifier key and is covered by a
        checkpoint signed with the *old* key before the new key signs anything.
        Returns the new verifier key.
        """
        with self._lock:
            new = generate_private_key()
            new_vkey = verifier_key(self.origin, public_bytes(new))
            old_id = key_id(self.origin, public_bytes(self._key))
            self._append_locked("key_rotated", {
                "old_key_id": old_id.hex(), "new_key_id": new_vkey.split("+")[1],
                "new_vkey": new_vkey,
            })
            self._commit_locked()
            self._checkpoint_locked()
            retire_private_key(self.key_path, new, old_id)
            export_public(self.key_path, new_vkey)
            self._key, self._vkey = new, new_vkey
            if self._entry_signer is not None:
                self._entry_signer.rekey(new)
            self._checkpoint_locked()
            return new_vkey

    def close(self) -> None:
        """Write ``log_closed``, make it durable, sign the final checkpoint, release files."""
        with self._lock:
            if self._closed:
                return
            if self._mp:
                fcntl.flock(self._lockfd, fcntl.LOCK_EX)
                self._resync()
            self._append_locked("log_closed", {})
            self._commit_locked()
            self._checkpoint_locked()
            os.fsync(self._ckfd)
            self._closed = True
            self._stop.set()
        with self._durable_cv:
            self._durable_cv.notify_all()
        if self._ticker is not None:
            self._ticker.join()
        self._file.close()
        if self._entry_signer is not None:
            self._entry_signer.close()
        os.close(self._ckfd)
        fcntl.flock(self._lockfd, fcntl.LOCK_UN)
        os.close(self._lockfd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

