"""A C2SP tlog-witness: ``POST <prefix>/add-checkpoint`` answers with a cosignature.

The witness keeps, per log origin, the latest checkpoint it cosigned (in a
SQLite file) and cosigns a new one only if it extends that one, checked in
this order (status codes as the spec says):

* malformed request (old-size line, proof lines, note) -> 400;
* origin not configured -> 404; no signature by a configured log key
  verifies -> 403; old size above the checkpoint's size -> 400;
* old size other than the size last cosigned -> 409 with that size
  (``text/x.tlog.size``); same size but another root -> 409;
* a consistency proof from the *stored* root that does not verify -> 422
  (so a rewritten history or a fork is never cosigned; the refused request
  is kept as evidence);
* else the new checkpoint is stored, then cosigned (200, one
  ``tlog-cosignature/v1`` line). Check and store are one SQLite transaction
  under a lock, so concurrent requests cannot roll the stored size back.

Example::

    >>> w = Witness("w.example/1", key, log_keys, Path("witness.db"))   # doctest: +SKIP
    >>> serve(w, "127.0.0.1", 8080)                                    # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vak.audit.checkpoint import (
    CheckpointSignatureError,
    SignedCheckpoint,
    UntrustedKeyError,
    verify_checkpoint,
)
from vak.audit.keys import TrustedKey
from vak.audit.merkle import verify_consistency
from vak.errors import AuditVerificationError, WitnessError
from vak.witness.cosignature import cosign
from vak.witness.note import MAX_NOTE_BYTES, log_checkpoint

__all__ = ["MAX_PROOF_LINES", "MAX_REQUEST_BYTES", "Response", "Witness", "make_server"]

MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = MAX_NOTE_BYTES + 64 * (MAX_PROOF_LINES + 1)
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,
                                  root BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (id INTEGER PRIMARY KEY, origin TEXT NOT NULL,
                                     at INTEGER NOT NULL, reason TEXT NOT NULL,
                                     request TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def _fail(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode())


@dataclass(frozen=True, slots=True)
class _Request:
    old: int
    proof: tuple[bytes, ...]
    signed: SignedCheckpoint
    text: str


def _parse(body: bytes) -> _Request:
    """Raises WitnessError (status 400 or 403) for a request that is not well formed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessError("request is not UTF-8", status=400) from None
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not _OLD.fullmatch(lines[0]):
        raise WitnessError("request must start with an 'old <size>' line and a blank line "
                           "before the checkpoint", status=400)
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessError(f"more than {MAX_PROOF_LINES} consistency proof lines", status=400)
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error):
            h = b""
        if len(h) != 32 or base64.b64encode(h).decode() != line:
            raise WitnessError("a consistency proof line is not one base64 hash", status=400)
        proof.append(h)
    signed, _ = log_checkpoint(note)
    return _Request(int(lines[0][4:]), tuple(proof), signed, text)


class Witness:
    """The witness's decisions and state, independent of HTTP (see the module docstring)."""

    def __init__(self, name: str, key: Ed25519PrivateKey, logs: Sequence[TrustedKey],
                 state: Path, clock: Callable[[], float] = time.time) -> None:
        self.name, self._key, self._clock = name, key, clock
        self._logs: dict[str, list[TrustedKey]] = {}
        for k in logs:
            self._logs.setdefault(k.name, []).append(k)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(state, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        with self._lock:
            row = self._db.execute("SELECT size, root FROM heads WHERE origin = ?",
                                   (origin,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def add_checkpoint(self, body: bytes) -> Response:
        """Answer one add-checkpoint request body."""
        try:
            req = _parse(body)
        except WitnessError as exc:
            return _fail(int(exc.details.get("status", 400)), exc.message)
        cp = req.signed.checkpoint
        keys = self._logs.get(cp.origin)
        if keys is None:
            return _fail(404, "unknown log origin")
        try:
            verify_checkpoint(req.signed, keys)
        except (UntrustedKeyError, CheckpointSignatureError):
            return _fail(403, "no signature by a known key of this log verifies")
        if req.old > cp.size:
            return _fail(400, "old size is larger than the checkpoint size")
        if req.old == 0 and req.proof:
            return _fail(400, "the consistency proof must be empty for old size 0")
        with self._lock:
            return self._advance(req)

    def _advance(self, req: _Request) -> Response:
        cp = req.signed.checkpoint
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT size, root FROM heads WHERE origin = ?",
                             (cp.origin,)).fetchone()
            size, root = (0, b"") if row is None else (int(row[0]), bytes(row[1]))
            if req.old != size:
                db.execute("ROLLBACK")
                return Response(409, f"{size}\n".encode(), "text/x.tlog.size")
            refusal = self._refusal(req, size, root)
            if refusal is not None:
                db.execute("INSERT INTO evidence (origin, at, reason, request) "
                           "VALUES (?, ?, ?, ?)",
                           (cp.origin, int(self._clock()), refusal.body.decode(), req.text))
                db.execute("COMMIT")
                return refusal
            db.execute("INSERT INTO heads (origin, size, root, note) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, "
                       "root = excluded.root, note = excluded.note",
                       (cp.origin, cp.size, cp.root, req.signed.note))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        line = cosign(self.name, self._key, cp.body(), int(self._clock()))
        return Response(200, line.encode())

    @staticmethod
    def _refusal(req: _Request, size: int, root: bytes) -> Response | None:
        cp = req.signed.checkpoint
        if size == 0:
            return None
        if cp.size == size:
            if cp.root != root:
                return _fail(409, "same size as the checkpoint cosigned before, other root")
            return None if not req.proof else _fail(422, "proof must be empty for equal sizes")
        try:
            verify_consistency(size, cp.size, req.proof, root, cp.root)
        except AuditVerificationError:
            return _fail(422, "the consistency proof from the cosigned checkpoint does not "
                         "verify (rollback or fork refused)")
        return None


def make_server(witness: Witness, host: str, port: int, prefix: str = "") -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) exposing ``POST <prefix>/add-checkpoint``."""
    path = prefix.rstrip("/") + "/add-checkpoint"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # a peer that stalls mid-request loses its connection

        def log_message(self, format: str, *args: object) -> None:
            return  # peers' bytes never reach the operator's terminal unscrubbed

        def _send(self, r: Response) -> None:
            self.send_response(r.status)
            self.send_header("Content-Type", r.content_type)
            self.send_header("Content-Length", str(len(r.body)))
            self.end_headers()
            self.wfile.write(r.body)

        def do_POST(self) -> None:
            if self.path != path:
                self._send(_fail(404, "not found"))
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_REQUEST_BYTES:
                self.close_connection = True
                self._send(_fail(400 if length < 0 else 413, "bad or missing Content-Length"))
                return
            self._send(witness.add_checkpoint(self.rfile.read(length)))

        def do_GET(self) -> None:
            self._send(_fail(404, "not found"))

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
