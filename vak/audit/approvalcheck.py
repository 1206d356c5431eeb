"""Offline check of the approvals in an audit log (run by :func:`vak.audit.verify.verify_log`).

For every ``host_result`` whose ``decision_seq`` names a ``host_decision`` with
effect ``approval_required``, the effect must cite (``approval_seq``) an
earlier ``approval`` entry for that decision whose signed statement

* has the statement shape of :mod:`vak.audit.approval` (``approval-malformed``);
* binds the exact call: its binding equals the one recomputed from the decision
  entry (skill id, manifest digest, function, ``args_hmac``, session) and the
  decision's request, and names the same approval id (``approval-binding``);
* says ``approve`` (``approval-denied``: an effect after a refusal);
* was signed by a key the given trust store lists with the ``approver`` role,
  not revoked or expired at the entry's time (``approval-role``), with a
  signature that verifies (``approval-signature``);
* is used by one effect only (``approval-reused``), and before ``not_after``
  (``approval-expired``).

An effect after ``approval_required`` without such a citation is
``approval-missing``. Every ``approval`` entry's signature and role are checked
too, used or not. Without a trust store (no ``--approvers``) the signature and
role checks cannot run: one ``WARNINGS`` finding says so.

Each problem is ``(kind, message, seq)``; the verifier reports them under its
``APPROVAL`` code. This module reads only the audit format (entry, approval)
and the key type the verifier already uses.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature

from vak.audit.approval import (
    entry_binding,
    parse_time,
    signature_bytes,
    signed_message,
    statement_problem,
)
from vak.audit.keys import TrustedKey

__all__ = ["KINDS", "Problem", "check_approvals"]

#: the finding kinds, as documented in docs/AUDIT-FORMAT.md
KINDS = ("approval-missing", "approval-malformed", "approval-binding", "approval-denied",
         "approval-signature", "approval-role", "approval-reused", "approval-expired",
         "approval-unchecked")

Problem = tuple[str, str, "int | None"]


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for raw in f:
            try:
                e = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # the main pass reports it
            if type(e) is dict and type(e.get("seq")) is int:
                yield e


def _mentions_approvals(path: Path) -> bool:
    """A cheap scan: only logs that mention approvals get the full pass."""
    with path.open("rb") as f:
        try:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return False
        with m:
            return m.find(b'"approval') >= 0


def _int(value: Any) -> int | None:
    """``value`` when it is a JSON integer (a crafted list or object never reaches a dict)."""
    return value if type(value) is int else None


def _time(e: Mapping[str, Any]) -> datetime | None:
    value = e.get("time")
    if type(value) is not str:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def check_approvals(path: str | Path,
                    approvers: Mapping[str, TrustedKey] | None) -> tuple[list[Problem], int]:
    """The approval problems of the log at ``path`` (see the module docstring), and
    how many approved effects passed every check.

    ``approvers`` maps key id -> trusted key (with roles); None: signatures
    and roles are not checked (one ``approval-unchecked`` problem when the
    log holds approvals).

    Raises:
        OSError: the log cannot be read.
    """
    path = Path(path)
    if not _mentions_approvals(path):
        return [], 0
    problems: list[Problem] = []
    required: dict[int | None, dict[str, Any]] = {}  # decision seq -> host_decision entry
    approvals: dict[int, dict[str, Any]] = {}  # seq -> approval entry (shape-checked)
    used: dict[str, int] = {}  # approval id -> seq of the effect that used it
    seen_any = False
    proven = 0
    for e in _entries(path):
        kind, seq = e.get("kind"), e["seq"]
        if kind == "host_decision":
            decision = e.get("decision")
            if type(decision) is dict and decision.get("effect") == "approval_required":
                required[seq] = e
        elif kind == "approval":
            seen_any = True
            bad = _approval_problem(e, required, approvers)
            if bad is not None:
                problems.append((bad[0], bad[1], seq))
            else:
                approvals[seq] = e
        elif kind == "host_result" and _int(e.get("decision_seq")) in required:
            found = list(_result_problems(e, seq, approvals, used))
            problems.extend(found)
            proven += not found
    if seen_any and approvers is None:
        problems.append(("approval-unchecked", "approval signatures and approver roles were "
                         "not checked: pass --approvers TRUST.yaml (or a --config with "
                         "trust_store)", None))
    return problems, (proven if approvers is not None else 0)


def _approval_problem(e: Mapping[str, Any], required: Mapping[int | None, Mapping[str, Any]],
                      approvers: Mapping[str, TrustedKey] | None) -> tuple[str, str] | None:
    statement, signature = e.get("statement"), e.get("signature")
    shape = statement_problem(statement, signature)
    if shape is not None:
        return "approval-malformed", shape
    assert isinstance(statement, dict)
    decision = required.get(_int(e.get("decision_seq")))
    if decision is None:
        return "approval-binding", "the approval does not follow an approval_required decision"
    request = decision.get("approval")
    request = request if type(request) is dict else {}
    binding = entry_binding(decision)
    if statement["binding"] != binding or request.get("binding") != binding:
        return "approval-binding", (f"approval {statement['approval']} binds another call "
                                    f"than decision seq {e.get('decision_seq')}")
    if statement["approval"] != request.get("id") or e.get("approval") != request.get("id"):
        return "approval-binding", (f"approval {statement['approval']} answers another "
                                    "request than the decision's")
    if e.get("verdict") != statement["verdict"]:
        return "approval-binding", "the entry's verdict differs from the signed statement"
    if approvers is None:
        return None
    key = approvers.get(statement["key_id"])
    if key is None or "approver" not in key.roles:
        return "approval-role", (f"key {statement['key_id']} is not an approver in the trust "
                                 "store")
    when = _time(e)
    if key.revoked or (key.expires is not None and when is not None and when >= key.expires):
        return "approval-role", f"key {statement['key_id']} is revoked or expired"
    raw = signature_bytes(signature)
    try:
        if raw is None:
            raise InvalidSignature
        key.verify(raw, signed_message(statement))
    except InvalidSignature:
        return "approval-signature", (f"the signature of approval {statement['approval']} "
                                      f"does not verify with {statement['key_id']}")
    return None


def _result_problems(e: Mapping[str, Any], seq: int, approvals: Mapping[int, Mapping[str, Any]],
                     used: dict[str, int]) -> Iterator[Problem]:
    cited = e.get("approval_seq")
    approval = approvals.get(cited) if type(cited) is int and cited < seq else None
    if approval is None or approval.get("decision_seq") != e.get("decision_seq"):
        yield ("approval-missing", f"an effect of decision seq {e.get('decision_seq')} that "
               "needs approval cites no valid approval for it", seq)
        return
    statement = approval["statement"]
    aid = statement["approval"]
    if approval.get("invocation") != e.get("invocation"):
        yield ("approval-binding", f"approval {aid} was accepted by another invocation than "
               "the effect citing it", seq)
    if statement["verdict"] != "approve":
        yield "approval-denied", f"an effect followed the refusal {aid}", seq
    if aid in used:
        yield "approval-reused", f"approval {aid} was already used at seq {used[aid]}", seq
    else:
        used[aid] = seq
    when = _time(approval)
    if when is None or when > parse_time(statement["not_after"]):
        yield ("approval-expired", f"approval {aid} was used after it expired at "
               f"{statement['not_after']}", seq)
