"""vak.host.mediation: one path for every host function (decide, record, act)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from host_helpers import ListSink, LogSink, call, context, manifest, mediator

from vak.errors import ABIError, HostCallLimitError, PolicyDeniedError
from vak.host.catalog import HOST_FUNCTIONS
from vak.host.secrets import EnvSecretProvider, FileSecretProvider
from vak.identity.manifest import Limits


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "out").mkdir(parents=True)
    (root / "a.txt").write_text("hello")
    return root


def _setup(tmp_path: Path, ws: Path, extra: str | None = None, **caps: object):  # type: ignore[no-untyped-def]
    sink = LogSink(tmp_path)
    m = mediator(
        tmp_path,
        sink,
        extra,
        fs_mounts={"/workspace": ws},
        secrets=EnvSecretProvider({"API_TOKEN": "VAK_T"}, {"VAK_T": "s3cr3t-value"}),
    )
    return sink, m, m.handler(context(manifest(**caps)))


def test_fs_read_write_list_within_grants(tmp_path: Path, ws: Path) -> None:
    sink, _, h = _setup(tmp_path, ws, fs_read=("/workspace",), fs_write=("/workspace/out",))
    assert call(h, "fs_read", path="/workspace/a.txt") == {"content": "hello", "truncated": False}
    assert call(h, "fs_read", path="/workspace/a.txt", max_bytes=2)["content"] == "he"
    assert call(h, "fs_write", path="/workspace/out/r.txt", content="hi") == {"written": 2}
    assert (ws / "out" / "r.txt").read_text() == "hi"
    call(h, "fs_write", path="/workspace/out/r.txt", content="!", append=True)
    assert (ws / "out" / "r.txt").read_text() == "hi!"
    names = [e["name"] for e in call(h, "fs_list", path="/workspace")["entries"]]
    assert names == ["a.txt", "out"]
    assert call(h, "fs_read", path="/workspace/missing") == {
        "error": "not_found",
        "message": "no such file or directory",
    }
    decisions = sink.decisions()
    assert len(decisions) == 6 and all(d["decision"]["effect"] == "allow" for d in decisions)
    assert {d["decision"]["policy_ids"][0] for d in decisions} == {
        "vak.fs.permit-read-in-grant",
        "vak.fs.permit-write-in-grant",
    }
    # effectful decisions are durable before the effect
    assert all(durable for kind, _, durable in sink.entries if kind == "host_decision")
    results = [f for k, f, _ in sink.entries if k == "host_result"]
    assert results[-1]["outcome"]["status"] == "error"
    assert results[-1]["outcome"]["error"] == "not_found"


def test_read_only_grant_refuses_write(tmp_path: Path, ws: Path) -> None:
    sink, _, h = _setup(tmp_path, ws, fs_read=("/workspace",))
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "fs_write", path="/workspace/a.txt", content="x")
    assert err.value.policy_ids == ("vak.capability-ceiling",)
    entry = sink.by_seq(err.value.audit_seq)
    assert entry["kind"] == "host_decision" and entry["decision"]["effect"] == "deny"
    assert entry["decision"]["policy_ids"] == ["vak.capability-ceiling"]
    assert (ws / "a.txt").read_text() == "hello"


def test_declared_capability_forbidden_by_operator(tmp_path: Path, ws: Path) -> None:
    ops = (
        '@id("ops.no-fs-for-trusted")\nforbid(principal, action in Vak::Action::"fs", resource)\n'
        'when { principal.trust_tier == "trusted" };\n'
    )
    sink, _, h = _setup(tmp_path, ws, ops, fs_read=("/workspace",))
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "fs_read", path="/workspace/a.txt")
    assert err.value.policy_ids == ("ops.no-fs-for-trusted",)
    assert sink.decisions()[0]["decision"]["policy_ids"] == ["ops.no-fs-for-trusted"]


@pytest.mark.parametrize("fn", [f.name for f in HOST_FUNCTIONS], ids=lambda n: n)
def test_undeclared_capability_is_denied_for_every_function(
    tmp_path: Path, ws: Path, fn: str
) -> None:
    sink, _, h = _setup(tmp_path, ws)
    args = {
        "path": "/workspace/a.txt",
        "content": "x",
        "url": "http://127.0.0.1:9/",
        "key": "k",
        "value": "v",
        "name": "API_TOKEN",
        "message": "m",
        "n": 4,
    }
    with pytest.raises(PolicyDeniedError) as err:
        h(fn, orjson.dumps(args))
    assert err.value.policy_ids == ("vak.capability-ceiling",)
    assert [d["decision"]["effect"] for d in sink.decisions()] == ["deny"]


def test_kv_is_namespaced_per_skill(tmp_path: Path, ws: Path) -> None:
    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink)
    a = m.handler(context(manifest("alpha", kv=True)))
    b = m.handler(context(manifest("beta", kv=True)))
    assert call(a, "kv_put", key="k", value="va") == {"ok": True}
    assert call(b, "kv_get", key="k") == {"found": False}
    call(b, "kv_put", key="k", value="vb")
    assert call(a, "kv_get", key="k") == {"found": True, "value": "va"}
    assert call(a, "kv_list", prefix="") == {"keys": ["k"]}
    assert call(a, "kv_delete", key="k") == {"deleted": True}
    assert call(a, "kv_get", key="k") == {"found": False}
    assert call(b, "kv_get", key="k")["value"] == "vb"
    # real SQLite file on disk
    assert (tmp_path / "kv.sqlite3").stat().st_size > 0
    m.close()


def test_secrets_never_logged_and_scrubbed(tmp_path: Path, ws: Path) -> None:
    sink, _, h = _setup(tmp_path, ws, secrets=("API_TOKEN",), log=True)
    assert call(h, "secret_get", name="API_TOKEN") == {"found": True, "value": "s3cr3t-value"}
    with pytest.raises(PolicyDeniedError):
        call(h, "secret_get", name="OTHER")
    call(h, "log", message="token is s3cr3t-value")
    assert b"s3cr3t-value" not in orjson.dumps([f for _, f, _ in sink.entries])
    out = h.scrub(orjson.dumps({"echo": "x s3cr3t-value y"}))
    assert out == b'{"echo":"x [REDACTED] y"}'


def test_file_secret_provider(tmp_path: Path, ws: Path) -> None:
    f = tmp_path / "secrets.toml"
    f.write_text('API_TOKEN = "from-file"\n')
    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink, secrets=FileSecretProvider(f))
    h = m.handler(context(manifest(secrets=("API_TOKEN",))))
    assert call(h, "secret_get", name="API_TOKEN")["value"] == "from-file"


def test_obs_functions(tmp_path: Path, ws: Path) -> None:
    sink, _, h = _setup(tmp_path, ws, log=True, clock=True, random=True)
    assert call(h, "log", message="hi", level="warning") == {"ok": True}
    assert call(h, "clock_now")["unix_ns"] > 0
    import base64

    assert len(base64.b64decode(call(h, "random_bytes", n=16)["b64"])) == 16
    # issue 11 item 2: log is recorded (durably) before its line is written, like every
    # effect; clock_now and random_bytes reveal nothing and stay non-durable
    assert [d for k, _, d in sink.entries if k == "host_decision"] == [True, False, False]


BAD_ARGS = [
    (b"not json", ABIError),
    (b"[1,2]", ABIError),
    (b'{"path": 5}', ABIError),
    (b'{"path": "/workspace/a\\u0000"}', PolicyDeniedError),
    (b'{"path": "rel"}', PolicyDeniedError),
]


@pytest.mark.parametrize(
    ("raw", "exc"), BAD_ARGS, ids=["garbage", "array", "int", "nul", "relative"]
)
def test_malformed_args_are_refused_and_recorded(
    tmp_path: Path, ws: Path, raw: bytes, exc: type
) -> None:
    sink, _, h = _setup(tmp_path, ws, fs_read=("/workspace",))
    with pytest.raises(exc):
        h("fs_read", raw)
    assert [d["decision"]["effect"] for d in sink.decisions()] == ["deny"]
    call(h, "fs_read", path="/workspace/a.txt")  # the kernel keeps serving


def test_unknown_function(tmp_path: Path, ws: Path) -> None:
    sink, _, h = _setup(tmp_path, ws)
    with pytest.raises(ABIError):
        h("exec", b"{}")
    assert sink.decisions()[0]["decision"]["policy_ids"] == ["vak.invalid-args"]


def test_host_call_limit(tmp_path: Path, ws: Path) -> None:
    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink)
    h = m.handler(context(manifest(limits=Limits(max_host_calls=2), clock=True)))
    call(h, "clock_now")
    call(h, "clock_now")
    with pytest.raises(HostCallLimitError):
        call(h, "clock_now")
    assert [d["decision"]["effect"] for d in sink.decisions()] == ["allow", "allow", "deny"]


def test_audit_failure_means_no_effect(tmp_path: Path, ws: Path) -> None:
    class Broken(ListSink):
        def append(self, kind, fields, *, durable=False):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    m = mediator(tmp_path, Broken(), fs_mounts={"/workspace": ws})
    h = m.handler(context(manifest(fs_write=("/workspace",))))
    with pytest.raises(OSError):
        call(h, "fs_write", path="/workspace/new.txt", content="x")
    assert not os.path.exists(ws / "new.txt")


def test_decision_cache_used_across_invocations(tmp_path: Path, ws: Path) -> None:
    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink, fs_mounts={"/workspace": ws})
    mf = manifest(fs_read=("/workspace",))
    call(m.handler(context(mf)), "fs_read", path="/workspace/a.txt")
    req_count = len(m.engine._cache)
    call(m.handler(context(mf)), "fs_read", path="/workspace/a.txt")
    assert len(m.engine._cache) == req_count == 1


def test_counters_saturate() -> None:
    from vak.host.context import COUNTER_MAX, CallCounters

    c = CallCounters()
    c.add("bytes_read", COUNTER_MAX - 1)
    assert c.add("bytes_read", 10**30) == COUNTER_MAX
    assert c.add("bytes_read", -5) == COUNTER_MAX  # negative amounts are ignored


def test_from_config(tmp_path: Path, ws: Path) -> None:
    # the room's settings objects, as the composition root builds them
    from vak.config import SHIPPED_POLICY_DIR
    from vak.host.mediation import Mediator
    from vak.host.secrets import provider_from_config
    from vak.host.settings import HostSettings
    from vak.policy.engine import PolicyEngine
    from vak.policy.settings import PolicySettings

    cfg = HostSettings(
        fs_mounts={"/workspace": ws},
        kv_path=tmp_path / "kv.sqlite3",
        secrets_env=("API_TOKEN",),
    )
    sink = LogSink(tmp_path)
    m = Mediator(
        cfg,
        PolicyEngine.load(PolicySettings((SHIPPED_POLICY_DIR,), decision_cache_size=8)),
        sink,
        args_digest=sink.args_digest,
        secrets=provider_from_config(cfg, {"API_TOKEN": "abcd1234"}),
    )
    h = m.handler(context(manifest(fs_read=("/workspace",), kv=True, secrets=("API_TOKEN",))))
    assert call(h, "fs_read", path="/workspace/a.txt")["content"] == "hello"
    assert call(h, "kv_put", key="a", value="b") == {"ok": True}
    assert (tmp_path / "kv.sqlite3").exists()
    assert call(h, "secret_get", name="API_TOKEN")["value"] == "abcd1234"
    assert provider_from_config(HostSettings()).get("API_TOKEN") is None


def test_audit_entry_shape_follows_audit_format(tmp_path: Path, ws: Path) -> None:
    sink, _, h = _setup(tmp_path, ws, fs_read=("/workspace",), kv=True)
    call(h, "fs_read", path="/workspace//a.txt")
    call(h, "kv_get", key="k")
    dec, res = sink.entries[0][1], sink.entries[1][1]
    assert dec["resource"] == "/workspace/a.txt" and dec["skill"]["id"] == "tester"
    assert dec["decision"]["policy_set"].startswith("sha256:")
    # the log's own keyed digest, passed through unchanged (whatever its prefix)
    assert dec["args_hmac"] == sink.args_digest(orjson.dumps({"path": "/workspace//a.txt"}))
    assert res["decision_seq"] == dec["seq"] and res["outcome"]["status"] == "ok"
    assert sink.decisions()[1]["resource"] == "kv:tester/k"


def test_secret_echoed_into_a_target_is_scrubbed_from_the_log(tmp_path: Path, ws: Path) -> None:
    sink, _, h = _setup(tmp_path, ws, secrets=("API_TOKEN",), fs_read=("/workspace",))
    call(h, "secret_get", name="API_TOKEN")
    with pytest.raises(PolicyDeniedError):
        call(h, "fs_read", path="/etc/s3cr3t-value")
    assert call(h, "fs_read", path="/workspace/s3cr3t-value")["error"] == "not_found"
    with pytest.raises(PolicyDeniedError):
        call(h, "fs_read", path="/workspace/s3cr3t-value\x00")
    sink.all()  # flush
    assert b"s3cr3t-value" not in sink.path.read_bytes()


def test_result_digest_is_the_logs_hmac_not_a_plain_hash(tmp_path: Path, ws: Path) -> None:
    # a plain sha256 of a small result (a file's content, a secret-derived value)
    # could be brute-forced from the log; the keyed digest cannot
    import hashlib

    sink, _, h = _setup(tmp_path, ws, fs_read=("/workspace",))
    reply = h("fs_read", orjson.dumps({"path": "/workspace/a.txt"}))
    res = next(f for k, f, _ in sink.entries if k == "host_result")
    digest = res["outcome"]["result_digest"]
    assert digest == sink.args_digest(reply)
    plain = hashlib.sha256(reply).hexdigest()
    assert plain not in digest


def test_repeated_calls_are_each_mediated_and_recorded(tmp_path: Path, ws: Path) -> None:
    # the normalisation memo and the decision cache must not skip any step:
    # every call is counted, decided, recorded and performed afresh
    sink, _, h = _setup(tmp_path, ws, fs_read=("/workspace",), fs_write=("/workspace/out",))
    for i in range(3):
        call(h, "fs_write", path="/workspace/out/n.txt", content=f"v{i}")
        assert call(h, "fs_read", path="/workspace/out/n.txt")["content"] == f"v{i}"
        with pytest.raises(PolicyDeniedError):
            call(h, "fs_read", path="/etc/passwd")
    assert h.ctx.counters.host_calls == 9
    decisions = sink.decisions()
    assert len(decisions) == 9
    assert [d["decision"]["effect"] for d in decisions] == ["allow", "allow", "deny"] * 3
    results = [f for k, f, _ in sink.entries if k == "host_result"]
    reads = [r["outcome"]["result_digest"] for r in results if r["host_function"] == "fs_read"]
    assert len(results) == 6 and len(set(reads)) == 3  # each read performed afresh


def test_memo_is_per_skill_ceiling(tmp_path: Path, ws: Path) -> None:
    # the same argument bytes under another skill's handler get that skill's ceiling
    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink, fs_mounts={"/workspace": ws})
    ok = m.handler(context(manifest(fs_read=("/workspace",))))
    no = m.handler(context(manifest(name="other", fs_read=("/elsewhere",))))
    assert call(ok, "fs_read", path="/workspace/a.txt")["content"] == "hello"
    with pytest.raises(PolicyDeniedError) as err:
        call(no, "fs_read", path="/workspace/a.txt")
    assert err.value.policy_ids == ("vak.capability-ceiling",)


def test_policy_reload_applies_to_cached_decisions(tmp_path: Path, ws: Path) -> None:
    from host_helpers import engine

    sink, m, h = _setup(tmp_path, ws, fs_read=("/workspace",))
    for _ in range(2):
        assert call(h, "fs_read", path="/workspace/a.txt")["content"] == "hello"
    old_digest = m.engine.digest
    strict = engine(tmp_path, '@id("ops.no-reads")\nforbid(principal, action, resource);\n')
    m.engine.reload(strict.loaded)
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "fs_read", path="/workspace/a.txt")
    assert err.value.policy_ids == ("ops.no-reads",)
    sets = [d["decision"]["policy_set"] for d in sink.decisions()]
    assert sets == [old_digest, old_digest, strict.digest] and old_digest != strict.digest


class _SealingSink(LogSink):
    """The real log, declared able to take Sealed values (as AuditLog itself is)."""

    accepts_sealed = True


def _strip(e: dict) -> dict:  # type: ignore[type-arg]
    # what differs between two logs and two calls by design: position, time, the
    # per-log HMAC key, the effect's duration
    out = {k: v for k, v in e.items()
           if k not in ("seq", "prev", "time", "invocation", "args_hmac", "outcome")}
    if "outcome" in e:
        out["status"] = e["outcome"]["status"]
    return out


def test_sealed_fragments_write_the_same_entries_as_plain_values(tmp_path: Path,
                                                                 ws: Path) -> None:
    # the skill, a recurring call's request and its Allow are sealed (encoded once)
    # only for a sink that says it takes them; the bytes on disk are the same
    written = []
    for sink in (LogSink(tmp_path), _SealingSink(tmp_path)):
        m = mediator(tmp_path, sink, fs_mounts={"/workspace": ws})
        h = m.handler(context(manifest(fs_read=("/workspace",))))
        for _ in range(3):
            assert call(h, "fs_read", path="/workspace/a.txt")["content"] == "hello"
        written.append([_strip(e) for _, e, _ in sink.entries])
        decisions = [e for e in written[-1] if e["kind"] == "host_decision"]
        # the first read adds the session's fs label; the recurring ones are identical
        assert "labels" not in decisions[0] and decisions[1] == decisions[2]
    plain, sealed = written
    assert plain == sealed and len(plain) == 6


def test_sealed_values_are_still_scrubbed(tmp_path: Path, ws: Path) -> None:
    sink = _SealingSink(tmp_path)
    m = mediator(tmp_path, sink, fs_mounts={"/workspace": ws},
                 secrets=EnvSecretProvider({"API_TOKEN": "VAK_T"}, {"VAK_T": "s3cr3t-value"}))
    h = m.handler(context(manifest(secrets=("API_TOKEN",), fs_read=("/workspace",))))
    for _ in range(3):  # recurring: the request is memoised, then sealed
        assert call(h, "fs_read", path="/workspace/s3cr3t-value")["error"] == "not_found"
    call(h, "secret_get", name="API_TOKEN")
    for _ in range(2):  # the session now holds the secret: sealed values are scrubbed too
        assert call(h, "fs_read", path="/workspace/s3cr3t-value")["error"] == "not_found"
    after = [e for _, e, _ in sink.entries][-4:]
    assert all(b"s3cr3t-value" not in orjson.dumps(e) for e in after)
