"""Every refusal leaves exactly one ``host_decision`` deny, recorded before the trap.

Covers the engine hand-off (``MediatedHandler.refuse``), the host-call limit
(manifest and operator cap), the structural bounds on guest JSON, and the
label seam of the Cedar context.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson
import pytest
from host_helpers import ListSink, LogSink, call, context, manifest, mediator
from http_helpers import cases
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import ABIError, HostCallLimitError, PolicyDeniedError
from vak.host.guestjson import MAX_DEPTH, MAX_NODES, parse_args
from vak.identity.manifest import Limits


def _denies(sink: LogSink) -> list[dict[str, object]]:
    return [d for d in sink.decisions() if d["decision"]["effect"] == "deny"]  # type: ignore[index]


REFUSALS = [
    ("vak.invalid-args", ABIError),
    ("vak.host-call-limit", HostCallLimitError),
    ("vak.something-else", PolicyDeniedError),
]


@pytest.mark.parametrize(("policy_id", "exc"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refuse_records_exactly_one_durable_deny(tmp_path: Path, policy_id: str,
                                                 exc: type) -> None:
    sink = LogSink(tmp_path)
    h = mediator(tmp_path, sink).handler(context(manifest(fs_read=("/w",))))
    err = h.refuse("fs_read", policy_id, "guest span (ptr=0xfffffff0, len=64) out of bounds")
    assert type(err) is exc
    entries = sink.entries
    assert [k for k, _, _ in entries] == ["host_decision"]
    _, entry, durable = entries[0]
    assert durable and entry["decision"]["effect"] == "deny"
    assert entry["decision"]["policy_ids"] == [policy_id]
    assert entry["host_function"] == "fs_read" and "args_hmac" not in entry
    assert err.details["audit_seq"] == entry["seq"]  # type: ignore[attr-defined]


def test_refused_span_through_the_kernel_handler_wrapper(tmp_path: Path) -> None:
    # the kernel's lazy handler proxies refuse to the mediation
    from vak.kernel import _LazyHost

    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink)

    class Tool:
        class skill:
            manifest = manifest(clock=True)
            manifest_sha256 = "11" * 32
            module_sha256 = "00" * 32
            signer_key_id = ""
            tier = "trusted"

    lazy = _LazyHost(m, Tool, "inv-1", None)  # type: ignore[arg-type]
    err = lazy.refuse("clock_now", "vak.invalid-args", "bad span")
    assert isinstance(err, ABIError)
    assert [d["decision"]["policy_ids"] for d in sink.decisions()] == [["vak.invalid-args"]]


@pytest.mark.parametrize(("declared", "cap", "allowed"), [(2, None, 2), (5, 3, 3), (2, 9, 2)],
                         ids=["manifest", "operator-cap-lower", "manifest-lower"])
def test_host_call_limit_is_the_lower_of_manifest_and_operator(
    tmp_path: Path, declared: int, cap: int | None, allowed: int
) -> None:
    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink, max_host_calls=cap)
    h = m.handler(context(manifest(limits=Limits(max_host_calls=declared), clock=True)))
    for _ in range(allowed):
        call(h, "clock_now")
    with pytest.raises(HostCallLimitError) as err:
        call(h, "clock_now")
    denies = _denies(sink)
    assert len(denies) == 1 and denies[0]["decision"]["policy_ids"] == ["vak.host-call-limit"]  # type: ignore[index]
    assert err.value.details["audit_seq"] == denies[0]["seq"]
    assert len(sink.decisions()) == allowed + 1
    assert [k for k, _, d in sink.entries if k == "host_decision" and d] == ["host_decision"]


def _nested(depth: int) -> bytes:
    return b'{"path": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


BAD_STRUCTURE = [
    ("too-deep", _nested(MAX_DEPTH + 1)),
    ("orjson-limit", b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("too-many-values", orjson.dumps({"path": "/w/a", "x": list(range(MAX_NODES + 1))})),
    ("too-many-keys", orjson.dumps({f"k{i}": i for i in range(MAX_NODES + 1)})),
    ("too-large", b'{"path": "' + b"a" * (3 << 20) + b'"}'),
    ("not-utf8", b'{"path": "\xff"}'),
    ("trailing", b'{"path": "/w/a"} x'),
]


@pytest.mark.parametrize("raw", [r[1] for r in BAD_STRUCTURE], ids=[r[0] for r in BAD_STRUCTURE])
def test_structural_bounds_are_recorded_as_invalid_args(tmp_path: Path, raw: bytes) -> None:
    sink = LogSink(tmp_path)
    h = mediator(tmp_path, sink).handler(context(manifest(fs_read=("/w",))))
    with pytest.raises(ABIError):
        h("fs_read", raw)
    assert [d["decision"]["policy_ids"] for d in sink.decisions()] == [["vak.invalid-args"]]


def test_depth_within_the_bound_is_accepted() -> None:
    assert parse_args(_nested(MAX_DEPTH), "fs_read")["path"] is not None


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=4), max_leaves=60))
def test_parse_args_accepts_or_raises_abi_error_only(value: object) -> None:
    data = orjson.dumps({"v": value})
    try:
        assert parse_args(data, "log") == {"v": value}
    except ABIError as exc:
        assert exc.details["reason"] in ("too_deep", "too_many_values")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet='{}[]":,1a ', max_size=200).map(str.encode))
def test_parse_args_on_any_bytes_raises_only_abi_error(data: bytes) -> None:
    with contextlib.suppress(ABIError):
        assert type(parse_args(data, "log")) is dict


def test_labels_reach_cedar_and_the_decision_entry(tmp_path: Path) -> None:
    ops = ('@id("ops.no-log-after-secret")\n'
           'forbid (principal, action == Vak::Action::"log", resource)\n'
           'when { context.session.labels.contains("secret:API_TOKEN") };\n')
    sink = ListSink()
    m = mediator(tmp_path, sink, ops)
    ctx = context(manifest(log=True))
    h = m.handler(ctx)
    assert call(h, "log", message="before") == {"ok": True}
    ctx.labels.add("secret:API_TOKEN")  # what the data-flow tracking will do on secret_get
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "log", message="after")
    assert err.value.policy_ids == ("ops.no-log-after-secret",)
    first, second = sink.decisions()
    assert "labels" not in first and second["labels"] == ["secret:API_TOKEN"]


def test_guest_text_in_a_refusal_is_bounded_and_escaped(tmp_path: Path) -> None:
    sink = LogSink(tmp_path)
    h = mediator(tmp_path, sink).handler(context(manifest(http=("*.example.com",))))
    host = "\x1b[31m" + "a" * 5000
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "http_request", url=f"http://{host}.example.com/")
    assert "\x1b" not in str(err.value) and len(str(err.value)) < 600
    reason = sink.decisions()[0]["decision"]["reason"]
    assert "\x1b" not in reason and len(reason) < 400


def test_a_log_line_cannot_forge_lines_or_escapes(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import logging

    h = mediator(tmp_path, ListSink()).handler(context(manifest(log=True)))
    with caplog.at_level(logging.INFO, logger="vak.skill.tester"):
        call(h, "log", message="ok\n2026-01-01 CRITICAL vak.kernel: forged\x1b[2J\u2028x")
    (record,) = [r for r in caplog.records if r.name == "vak.skill.tester"]
    text = record.getMessage()
    assert "\n" not in text and "\x1b" not in text and "\u2028" not in text
    assert text.startswith("ok\\x0a2026") and "\\x1b[2J" in text


MARK = "ZqXjWvK7"  # stands for a secret the guest put into a refused argument
REFUSED_ARGS = [
    ("bad-port", "http_request", {"url": f"http://a.example:{MARK}/"}),
    ("numeric-port", "http_request", {"url": "http://a.example:99999/"}),
    ("scheme", "http_request", {"url": f"{MARK}://a.example/"}),
    ("idna-host", "http_request", {"url": f"http://{MARK}\u00df\u0301..x/"}),
    ("dns-host", "http_request", {"url": f"http://{MARK}!.example/"}),
    ("numeric-host", "http_request", {"url": "http://a.99999999/"}),
    ("ipv6", "http_request", {"url": f"http://[{MARK}::1]/"}),
    ("method", "http_request", {"url": "http://a.example/", "method": MARK}),
    ("header-name", "http_request", {"url": "http://a.example/", "headers": {f"{MARK}:": "v"}}),
    ("header-value", "http_request", {"url": "http://a.example/", "headers": {"x": f"{MARK}\r\n"}}),
    ("relative-path", "fs_read", {"path": f"{MARK}/a"}),
    ("nul-path", "fs_read", {"path": f"/w/{MARK}\x00"}),
    ("kv-key", "kv_get", {"key": f"{MARK}\x00"}),
    ("secret-name", "secret_get", {"name": f"{MARK}!"}),
    ("log-level", "log", {"message": "m", "level": MARK}),
]


@cases(("fn", "args"), REFUSED_ARGS)
def test_a_refused_argument_is_never_quoted(tmp_path: Path, fn: str,
                                            args: dict[str, object]) -> None:
    sink = LogSink(tmp_path)
    mf = manifest(http=("*.example",), fs_read=("/w",), kv=True, secrets=("S",), log=True)
    h = mediator(tmp_path, sink).handler(context(mf))
    with pytest.raises((PolicyDeniedError, ABIError)) as err:
        h(fn, orjson.dumps(args))
    seen = (str(err.value) + orjson.dumps(err.value.details).decode()
            + sink.path.read_text()).lower()
    assert MARK.lower() not in seen and "99999" not in seen
    assert [d["decision"]["effect"] for d in sink.decisions()] == ["deny"]
