"""``vak-audit verify`` on approvals: a log written by the real audit writer, validly
chained and checkpointed, whose approvals are forged, reused, expired, for another
call or after a refusal -- each caught with its own finding kind (APPROVAL code)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vak.approvals.answer import Answer, sign_answer
from vak.audit.approval import call_binding, signed_message
from vak.audit.keys import load_trusted_keys
from vak.audit.log import AuditLog
from vak.audit.settings import AuditSettings
from vak.audit.verify import Code, verify_log
from vak.identity.keys import SigningKey
from vak.identity.trust import TrustedKey

SKILL = {"id": "notes", "version": "1.0.0", "manifest_digest": "sha256:" + "ab" * 32,
         "signer": "ed25519:00"}
APPROVER = SigningKey(b"\x01" * 32)
PLAIN = SigningKey(b"\x02" * 32)
AID = "0123456789abcdef0123456789abcdef"


def approvers() -> dict[str, TrustedKey]:
    return {APPROVER.verify_key.key_id: TrustedKey(APPROVER.verify_key,
                                                  roles=frozenset({"approver"})),
            PLAIN.verify_key.key_id: TrustedKey(PLAIN.verify_key)}


class Writer:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.log = AuditLog.open(AuditSettings(tmp / "vak.log", tmp / "log.key",
                                               tmp / "args.hmac", fsync="strict"))

    def decision(self, args_hmac: str = "hmac-sha256:" + "11" * 32, session: str = "s1",
                 aid: str = AID) -> tuple[int, str]:
        binding = call_binding(SKILL["id"], SKILL["manifest_digest"], "fs_write", args_hmac,
                               session)
        ref = self.log.append("host_decision", {
            "invocation": "i1", "session": session, "skill": SKILL, "host_function": "fs_write",
            "resource": "/workspace/x", "args_hmac": args_hmac,
            "decision": {"effect": "approval_required", "policy_ids": ["p"],
                         "policy_set": "sha256:00"},
            "approval": {"id": aid, "binding": binding}}, durable=True)
        return ref.seq, binding

    def approval(self, decision_seq: int, answer: Answer, aid: str = AID) -> int:
        return self.log.append("approval", {
            "invocation": "i1", "session": "s1", "approval": aid, "decision_seq": decision_seq,
            "verdict": answer.statement["verdict"], "key_id": answer.key_id,
            "statement": dict(answer.statement), "signature": answer.signature},
            durable=True).seq

    def result(self, decision_seq: int, approval_seq: int | None,
               invocation: str = "i1") -> None:
        fields: dict[str, Any] = {"invocation": invocation, "host_function": "fs_write",
                                  "resource": "/workspace/x", "decision_seq": decision_seq,
                                  "outcome": {"status": "ok"}}
        if approval_seq is not None:
            fields["approval_seq"] = approval_seq
        self.log.append("host_result", fields)

    def verify(self, keys: dict[str, TrustedKey] | None = None) -> Any:
        self.log.close()
        return verify_log(self.dir / "vak.log", load_trusted_keys(self.dir / "log.key.pub"),
                          approvers=approvers() if keys is None else keys)


def kinds(report: Any) -> list[str]:
    return [f.kind for f in report.findings if f.code == Code.APPROVAL]


def answer(binding: str, key: SigningKey = APPROVER, approve: bool = True,
           ttl: timedelta = timedelta(minutes=5), aid: str = AID,
           now: datetime | None = None) -> Answer:
    return sign_answer(aid, binding, approve, key, ttl, now)


def test_a_valid_approval_is_proven(tmp_path: Path) -> None:
    w = Writer(tmp_path)
    seq, binding = w.decision()
    w.result(seq, w.approval(seq, answer(binding)))
    report = w.verify()
    assert report.result == Code.OK, report.render()
    assert any("1 approved effect(s) proven" in n for n in report.notes)


def test_reused_approval(tmp_path: Path) -> None:
    w = Writer(tmp_path)
    seq, binding = w.decision()
    aseq = w.approval(seq, answer(binding))
    w.result(seq, aseq)
    w.result(seq, aseq)
    report = w.verify()
    assert kinds(report) == ["approval-reused"] and report.result == Code.APPROVAL


def test_approval_cited_by_another_invocation(tmp_path: Path) -> None:
    w = Writer(tmp_path)
    seq, binding = w.decision()
    w.result(seq, w.approval(seq, answer(binding)), invocation="i2")
    assert kinds(w.verify()) == ["approval-binding"]


def test_forged_signature_and_non_approver_key(tmp_path: Path) -> None:
    w = Writer(tmp_path)
    seq, binding = w.decision()
    good = answer(binding)
    forged = Answer({**good.statement, "not_after": "2099-01-01T00:00:00Z"}, good.signature)
    w.result(seq, w.approval(seq, forged))
    seq2, binding2 = w.decision(aid="f" * 32, args_hmac="hmac-sha256:" + "22" * 32)
    w.result(seq2, w.approval(seq2, answer(binding2, PLAIN, aid="f" * 32), aid="f" * 32))
    report = w.verify()
    assert sorted(set(kinds(report))) == ["approval-missing", "approval-role",
                                          "approval-signature"]


def test_approval_for_other_arguments(tmp_path: Path) -> None:
    w = Writer(tmp_path)
    _, binding = w.decision()  # the call that was approved
    seq, _ = w.decision(args_hmac="hmac-sha256:" + "99" * 32)  # another call, same id
    w.result(seq, w.approval(seq, answer(binding)))
    assert "approval-binding" in kinds(w.verify())


def test_effect_without_approval_after_refusal_and_expired(tmp_path: Path) -> None:
    w = Writer(tmp_path)
    seq, binding = w.decision()
    w.result(seq, None)  # no approval at all
    w.result(seq, w.approval(seq, answer(binding, approve=False)))  # after a refusal
    seq2, binding2 = w.decision(aid="e" * 32, args_hmac="hmac-sha256:" + "33" * 32)
    old = datetime.now(UTC) - timedelta(hours=2)
    stale = answer(binding2, aid="e" * 32, ttl=timedelta(minutes=1), now=old)
    w.result(seq2, w.approval(seq2, stale, aid="e" * 32))
    assert sorted(kinds(w.verify())) == ["approval-denied", "approval-expired",
                                         "approval-missing"]


def test_without_approvers_the_check_is_a_warning(tmp_path: Path) -> None:
    w = Writer(tmp_path)
    seq, binding = w.decision()
    w.result(seq, w.approval(seq, answer(binding)))
    w.log.close()
    report = verify_log(tmp_path / "vak.log", load_trusted_keys(tmp_path / "log.key.pub"))
    assert report.result == Code.WARNINGS
    assert [f.kind for f in report.findings if f.kind] == ["approval-unchecked"]


@pytest.mark.parametrize("mangle", [
    lambda s, sig: ({**s, "extra": 1}, sig),
    lambda s, sig: ({**s, "verdict": "maybe"}, sig),
    lambda s, sig: (s, sig[:-4] + "AAA="),
    lambda s, sig: (s, base64.b64encode(b"x" * 10).decode()),
    lambda s, sig: ({**s, "v": True}, sig),
])
def test_malformed_statements(tmp_path: Path, mangle: Any) -> None:
    w = Writer(tmp_path)
    seq, binding = w.decision()
    good = answer(binding)
    statement, signature = mangle(dict(good.statement), good.signature)
    w.result(seq, w.approval(seq, Answer(statement, signature)))
    found = kinds(w.verify())
    assert found and found[0] in ("approval-malformed", "approval-signature", "approval-binding")
    assert "approval-missing" in found
    assert signed_message(good.statement).startswith(b"vak-approval-v1\n")


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(st.tuples(
    st.sampled_from(["host_decision", "approval", "host_result"]),
    st.dictionaries(st.sampled_from(["decision", "decision_seq", "approval", "approval_seq",
                                     "statement", "signature", "verdict", "skill", "time",
                                     "session", "args_hmac", "host_function"]), _json,
                    max_size=8)), max_size=8))
def test_crafted_approval_entries_never_crash_the_check(
        tmp_path_factory: pytest.TempPathFactory, fields: list[tuple[str, dict[str, Any]]]) -> None:
    import orjson

    from vak.audit.approvalcheck import KINDS, check_approvals

    path = tmp_path_factory.mktemp("c") / "vak.log"
    lines = [orjson.dumps({**f, "seq": i, "kind": kind}) for i, (kind, f) in enumerate(fields)]
    path.write_bytes(b"".join(line + b"\n" for line in lines) + b'{"approval"\n')
    for keys in (approvers(), None):
        problems, proven = check_approvals(path, keys)
        assert all(kind in KINDS for kind, _, _ in problems) and proven >= 0
