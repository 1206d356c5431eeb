"""Mediator.explain answers as the real call would, and performs nothing; audit targets."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
from host_helpers import LOOPBACK_POLICY, LogSink, call, context, manifest, mediator
from http_helpers import CountingResolver, cases
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import PolicyDeniedError
from vak.host.mediation import audit_target
from vak.policy.entities import Entity


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("hello")
    return root


CASES = [
    ("fs-allow", "fs_read", {"path": "/workspace/a.txt"}),
    ("fs-ceiling", "fs_read", {"path": "/etc/passwd"}),
    ("fs-write-readonly", "fs_write", {"path": "/workspace/a.txt", "content": "x"}),
    ("kv", "kv_get", {"key": "k"}),
    ("random", "random_bytes", {"n": 8}),
    ("log-undeclared", "log", {"message": "m"}),
    ("http-literal-loopback", "http_request", {"url": "http://127.0.0.1:9/"}),
    ("http-literal-metadata", "http_request", {"url": "http://169.254.169.254/"}),
]


@cases(("fn", "args"), CASES)
def test_explain_matches_the_real_call_and_records_nothing(
    tmp_path: Path, ws: Path, fn: str, args: dict[str, object]
) -> None:
    sink = LogSink(tmp_path)
    res = CountingResolver()
    m = mediator(tmp_path, sink, LOOPBACK_POLICY, fs_mounts={"/workspace": ws}, resolver=res)
    mf = manifest(fs_read=("/workspace",), kv=True, random=True,
                  http=("127.0.0.1:9", "169.254.169.254"))
    ctx = context(mf)
    why = m.explain(ctx, fn, args)
    assert sink.entries == [] and ctx.counters.host_calls == 0 and res.lookups == 0
    h = m.handler(ctx)
    try:
        call(h, fn, **args)
        allowed, ids = True, None
    except PolicyDeniedError as exc:
        allowed, ids = False, exc.policy_ids
    assert why.allowed is allowed
    decision = sink.decisions()[0]["decision"]
    assert list(why.policy_ids) == decision["policy_ids"]
    if ids is not None:
        assert why.policy_ids == ids
    res_data = why.request["resource"]
    explained = Entity(res_data["uid"]["type"], res_data["uid"]["id"], res_data["attrs"])
    assert audit_target(explained) == sink.decisions()[0]["resource"]


def test_explain_http_by_name_never_resolves(tmp_path: Path) -> None:
    sink = LogSink(tmp_path)
    res = CountingResolver()
    m = mediator(tmp_path, sink, LOOPBACK_POLICY, resolver=res)
    ctx = context(manifest(http=("named.test",)))
    pending = m.explain(ctx, "http_request", {"url": "http://named.test/"})
    assert pending.address_pending and [s["stage"] for s in pending.stages] == ["url"]
    assert pending.stages[0]["policy_ids"] == ["vak.net.permit-resolve"]
    meta = m.explain(ctx, "http_request", {"url": "http://named.test/"},
                     addresses=("169.254.169.254",))
    assert not meta.allowed and meta.policy_ids == ("vak.net.forbid-metadata",)
    assert [s["stage"] for s in meta.stages] == ["url", "address"]
    assert meta.request["resource"]["attrs"]["ip_class"] == "metadata"
    undeclared = m.explain(ctx, "http_request", {"url": "http://other.test/"},
                           addresses=("8.8.8.8",))
    assert undeclared.ceiling is not None and undeclared.cedar.allowed
    assert undeclared.policy_ids == ("vak.capability-ceiling",)
    assert res.lookups == 0 and sink.entries == []


KV_TARGETS = [
    ("plain", "k", "kv:tester/k"),
    ("slash", "a/b", "kv:tester/a%2Fb"),
    ("dotdot", "..", "kv:tester/%2E%2E"),
    ("dotdot-slash", "../other/k", "kv:tester/%2E%2E%2Fother%2Fk"),
    ("backslash", "a\\b", "kv:tester/a%5Cb"),
    ("percent", "a%2Fb", "kv:tester/a%252Fb"),
    ("newline-ansi", "x\n\x1b[31mforged", "kv:tester/x%0A%1B%5B31mforged"),
    ("unicode", "schl\u00fcssel", "kv:tester/schl%C3%BCssel"),
]


@cases(("key", "want"), KV_TARGETS)
def test_kv_audit_targets_are_unambiguous(tmp_path: Path, key: str, want: str) -> None:
    sink = LogSink(tmp_path)
    h = mediator(tmp_path, sink).handler(context(manifest(kv=True)))
    call(h, "kv_put", key=key, value="v")
    assert sink.decisions()[0]["resource"] == want
    assert call(h, "kv_get", key=key) == {"found": True, "value": "v"}  # the key itself is raw


def _kv(key: str) -> Entity:
    return Entity("Vak::KvKey", f"ns/{key}", {"namespace": "ns", "key": key})


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_kv_audit_target_is_injective_and_printable(a: str, b: str) -> None:
    ta, tb = audit_target(_kv(a)), audit_target(_kv(b))
    assert (ta == tb) == (a == b)
    assert ta.isprintable() and ta.count("/") == 1
    assert unquote(ta.removeprefix("kv:ns/")) == a


APPROVAL_POLICY = """
@id("ops.writes-need-approval")
@approval("required")
permit (principal, action == Vak::Action::"fs_write", resource)
when { resource in principal.fs_write };
"""


def test_explain_says_when_approval_is_required_and_no_store_fails_closed(
        tmp_path: Path, ws: Path) -> None:
    """An Allow decided by a @approval("required") permit is reported as such; a
    mediator without an approval store refuses the call (recorded), never performs it."""
    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink, APPROVAL_POLICY, fs_mounts={"/workspace": ws})
    ctx = context(manifest("notes", fs_read=("/workspace",), fs_write=("/workspace",)))
    write = m.explain(ctx, "fs_write", {"path": "/workspace/a.txt", "content": "x"})
    read = m.explain(ctx, "fs_read", {"path": "/workspace/a.txt"})
    assert write.allowed and write.approval_required
    assert read.allowed and not read.approval_required
    with pytest.raises(PolicyDeniedError) as info:
        call(m.handler(ctx), "fs_write", path="/workspace/a.txt", content="x")
    assert info.value.policy_ids == ("vak.approval-unavailable",)
    assert (ws / "a.txt").read_text() == "hello"
    assert sink.decisions()[-1]["decision"]["effect"] == "deny"
