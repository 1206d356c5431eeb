"""The approval store: pending requests and their signed answers, one file each.

Layout: ``<state_dir>/approvals/<ID>.json`` (mode 0600), written atomically
(temp file + rename); every read-modify-write holds an exclusive ``flock`` on
``<state_dir>/approvals/store.lock``, so two processes (the kernel and
``vak approvals approve``) or two threads never lose an update, and an answer
is consumed by exactly one call (concurrent retries: one proceeds).

Every file is parsed strictly (size bound, exact fields and types, the id in
the file matches its name): hostile content is an :class:`~vak.errors.ApprovalError`,
never a crash and never an approval. File format::

    {"v": 1,
     "request": {"id": ID, "binding": "sha256:...", "skill": NAME, "manifest_digest": ...,
                 "function": ..., "resource": ..., "summary": {...}, "session": ...,
                 "invocation": ..., "created": RFC3339},
     "answer": null | {"statement": {...}, "signature": BASE64},
     "consumed": null | {"invocation": ..., "time": RFC3339}}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from vak.approvals.answer import Answer, utc_text
from vak.audit.approval import APPROVAL_ID, parse_time
from vak.errors import ApprovalError
from vak.identity.keyfile import file_lock, write_file_atomic
from vak.text import printable

__all__ = ["MAX_FILE_BYTES", "ApprovalRecord", "ApprovalRequest", "ApprovalStore"]

MAX_FILE_BYTES = 64 << 10
#: records kept after they stop mattering (used, expired, or never answered): the
#: audit log is the lasting record; the store only serves calls still to come
KEEP = timedelta(days=7)
_REQUEST_FIELDS = ("id", "binding", "skill", "manifest_digest", "function", "resource",
                   "summary", "session", "invocation", "created")


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a person is asked to approve: one exact call (see :mod:`vak.audit.approval`)."""

    id: str
    binding: str
    skill: str
    manifest_digest: str
    function: str
    #: the normalised target (scrubbed of the session's secrets)
    resource: str
    summary: Mapping[str, Any]
    session: str
    #: the invocation that first asked (a retry is a new invocation)
    invocation: str
    created: str

    def to_json(self) -> dict[str, Any]:
        return {name: (dict(self.summary) if name == "summary" else getattr(self, name))
                for name in _REQUEST_FIELDS}

    def describe(self) -> str:
        """One line for a person: the skill, the function and its target (guest-chosen
        text, so every non-printable character is escaped: no terminal control)."""
        return printable(f"skill {self.skill} wants vak.{self.function} on "
                         f"{self.resource or '(none)'} (session {self.session or '(none)'})")

    @classmethod
    def from_json(cls, doc: Any, source: str) -> ApprovalRequest:
        """Raises: ApprovalError: wrong fields or types."""
        if type(doc) is not dict or set(doc) != set(_REQUEST_FIELDS):
            raise ApprovalError(f"{source}: request fields must be exactly "
                                f"{', '.join(_REQUEST_FIELDS)}", file=source, field="request")
        for name in _REQUEST_FIELDS:
            want = dict if name == "summary" else str
            if type(doc[name]) is not want:
                raise ApprovalError(f"{source}: request.{name} has the wrong type",
                                    file=source, field=f"request.{name}")
        if not APPROVAL_ID.fullmatch(doc["id"]):
            raise ApprovalError(f"{source}: request.id is malformed", file=source,
                                field="request.id")
        return cls(**doc)


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One store file: the request, its answer (if any) and whether a call used it."""

    request: ApprovalRequest
    answer: Answer | None = None
    consumed: Mapping[str, str] | None = None

    @property
    def state(self) -> str:
        """``pending``, ``approved``, ``denied`` or ``used``."""
        if self.consumed is not None:
            return "used"
        if self.answer is None:
            return "pending"
        return "approved" if self.answer.approved else "denied"

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, "request": self.request.to_json(),
                "answer": None if self.answer is None else self.answer.to_json(),
                "consumed": None if self.consumed is None else dict(self.consumed)}


class ApprovalStore:
    """The directory of approval files (created 0700 on first write)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    # ------------------------------------------------------------------ reading
    def path(self, approval_id: str) -> Path:
        """The file of ``approval_id``.

        Raises:
            ApprovalError: not a well-formed id (never a path outside the store).
        """
        if type(approval_id) is not str or not APPROVAL_ID.fullmatch(approval_id):
            raise ApprovalError(f"{approval_id!r:.50} is not an approval id",
                                valid="32 lowercase hex digits, as `vak approvals list` shows")
        return self.dir / f"{approval_id}.json"

    def get(self, approval_id: str) -> ApprovalRecord:
        """Raises: ApprovalError: no such approval, or its file is invalid."""
        path = self.path(approval_id)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise ApprovalError(f"no approval {approval_id} in {self.dir}", file=str(path),
                                fix="see `vak approvals list`") from None
        except OSError as exc:
            raise ApprovalError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from None
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        return _parse(data, str(path), approval_id)

    def records(self) -> Iterator[ApprovalRecord]:
        """Every approval, oldest first (by creation time, then id).

        Raises:
            ApprovalError: a file in the store is invalid.
        """
        if not self.dir.is_dir():
            return iter(())
        ids = sorted(p.stem for p in self.dir.glob("*.json") if APPROVAL_ID.fullmatch(p.stem))
        recs = [self.get(i) for i in ids]
        return iter(sorted(recs, key=lambda r: (r.request.created, r.request.id)))

    # ------------------------------------------------------------------ writing
    def _write(self, record: ApprovalRecord) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomic(self.path(record.request.id),
                          orjson.dumps(record.to_json(), option=orjson.OPT_SORT_KEYS), mode=0o600)

    def _lock(self) -> Any:
        return file_lock(self.dir / "store", "approval store")

    def open_request(
        self, fields: Mapping[str, Any], usable: Callable[[ApprovalRecord], bool],
        invocation: str,
    ) -> tuple[ApprovalRequest, Answer | None]:
        """The request of the call ``fields`` describes, and an answer this call consumes.

        Under the store lock: an unused answered record with the same binding
        that ``usable`` accepts (a valid, unexpired, signed answer) is marked
        used by ``invocation`` and returned with its answer; otherwise the
        pending request of that binding is returned (a retry does not pile up
        requests), or a new one is written.

        Raises:
            ApprovalError: a store file is invalid, or ``usable`` refuses an answer.
        """
        binding = fields["binding"]
        now = datetime.now(UTC)
        with self._lock():
            pending: ApprovalRequest | None = None
            for rec in self.records():
                if _stale(rec, now):
                    self.path(rec.request.id).unlink(missing_ok=True)
                    continue
                if rec.request.binding != binding or rec.consumed is not None:
                    continue
                if rec.answer is None:
                    pending = pending or rec.request
                elif usable(rec):
                    self._write(replace(rec, consumed={"invocation": invocation,
                                                       "time": utc_text(datetime.now(UTC))}))
                    return rec.request, rec.answer
            if pending is not None:
                return pending, None
            request = ApprovalRequest(id=os.urandom(16).hex(), binding=binding,
                                      invocation=invocation,
                                      created=utc_text(datetime.now(UTC)),
                                      **{k: fields[k] for k in _REQUEST_FIELDS
                                         if k not in ("id", "binding", "invocation", "created")})
            self._write(ApprovalRecord(request))
            return request, None

    def answer(self, approval_id: str, answer: Answer, *, consume: str | None = None) -> None:
        """Record ``answer`` for a pending approval (and mark it used by ``consume``).

        Raises:
            ApprovalError: no such approval, or it is already answered.
        """
        with self._lock():
            rec = self.get(approval_id)
            if rec.answer is not None:
                raise ApprovalError(f"approval {approval_id} is already {rec.state}",
                                    fix="a retried call opens a new request if this one is "
                                    "used or denied")
            used = None if consume is None else {"invocation": consume,
                                                  "time": utc_text(datetime.now(UTC))}
            self._write(ApprovalRecord(rec.request, answer, used))


def _stale(rec: ApprovalRecord, now: datetime) -> bool:
    """Whether ``rec`` stopped mattering more than :data:`KEEP` ago (pruned on the
    next request, so the store a call scans stays bounded by recent activity)."""
    if rec.consumed is not None:
        when = rec.consumed.get("time", "")
    elif rec.answer is not None:
        when = rec.answer.statement["not_after"]
    else:
        when = rec.request.created
    try:
        return now - parse_time(when) > KEEP
    except ValueError:
        return False  # an odd time in a parsed record: kept (listed, never used)


def _parse(data: bytes, source: str, approval_id: str) -> ApprovalRecord:
    if len(data) > MAX_FILE_BYTES:
        raise ApprovalError(f"{source}: approval file too large", file=source,
                            valid=f"at most {MAX_FILE_BYTES} bytes")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApprovalError(f"{source}: not valid JSON", file=source) from None
    if type(doc) is not dict or set(doc) != {"v", "request", "answer", "consumed"} \
            or doc["v"] != 1 or type(doc["v"]) is not int:
        raise ApprovalError(f"{source}: fields must be exactly v (1), request, answer, consumed",
                            file=source)
    request = ApprovalRequest.from_json(doc["request"], source)
    if request.id != approval_id:
        raise ApprovalError(f"{source}: request.id does not match the file name", file=source)
    answer = None if doc["answer"] is None else Answer.from_json(doc["answer"], source)
    if answer is not None and answer.approval_id != approval_id:
        raise ApprovalError(f"{source}: the answer is for another approval", file=source)
    consumed = doc["consumed"]
    if consumed is not None and (type(consumed) is not dict
                                 or set(consumed) != {"invocation", "time"}
                                 or not all(type(v) is str for v in consumed.values())):
        raise ApprovalError(f"{source}: consumed must be null or {{invocation, time}}",
                            file=source)
    return ApprovalRecord(request, answer, consumed)
