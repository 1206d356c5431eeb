"""Hostile host-call arguments: every case is refused, recorded once, and the kernel keeps serving.

One row per attack (pytest ids name them), plus Hypothesis properties over
generated paths and URLs: nothing outside a grant is ever performed, and every
call appears exactly once as a ``host_decision``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import contextlib

from host_helpers import LogSink, call, context, engine, manifest
from http_helpers import cases

from vak.errors import ABIError, PolicyDeniedError
from vak.host.http import HttpFamily
from vak.host.mediation import Mediator
from vak.host.normalize import classify_ip
from vak.host.settings import HostSettings

SECRET = "TOP-SECRET-CONTENT"


class SwitchResolver:
    """A resolver whose answer each test example sets."""

    answer: tuple[str, ...] = ("127.0.0.1",)

    def resolve(self, host: str, port: int) -> tuple[str, ...]:
        return self.answer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("escape")
    ws = base / "ws"
    (ws / "pub" / "out").mkdir(parents=True)
    (ws / "priv").mkdir()
    (ws / "pub" / "a.txt").write_text("public")
    (ws / "priv" / "secret.txt").write_text(SECRET)
    outside = base / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text(SECRET)
    os.symlink(outside, ws / "pub" / "abs-link")
    os.symlink("../priv", ws / "pub" / "rel-link")
    os.symlink(outside / "target.txt", ws / "pub" / "file-link")
    os.symlink(outside / "target.txt", ws / "pub" / "out" / "write-link")
    evil = base / "evil"
    evil.mkdir()
    (evil / "x").write_text(SECRET)
    sink = LogSink(base)
    m = Mediator(
        HostSettings(fs_mounts={"/workspace": ws, "/workspace-evil": evil}, kv_path=base / "kv.db"),
        engine(base),
        sink,
        args_digest=sink.args_digest,
    )
    mf = manifest(
        fs_read=("/workspace/pub",),
        fs_write=("/workspace/pub/out",),
        http=(
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::ffff:7f00:1]:8080",
            "169.254.169.254",
            "[::ffff:a9fe:a9fe]",
            "10.0.0.1",
            "100.64.0.1",
            "[fc00::1]",
            "224.0.0.1",
            "0.0.0.0",
        ),
    )
    res = SwitchResolver()
    net = Mediator(HostSettings(), m.engine, sink, args_digest=sink.args_digest, resolver=res)
    yield {
        "sink": sink,
        "h": m.handler(context(mf)),
        "ws": ws,
        "outside": outside,
        "m": m,
        "net": net,
        "resolver": res,
    }
    m.close()
    sink.close()


FS_CASES = [
    ("dotdot-escape", "fs_read", "/workspace/pub/../priv/secret.txt", "vak.capability-ceiling"),
    ("dotdot-root", "fs_read", "/workspace/pub/../../../../etc/passwd", "vak.capability-ceiling"),
    ("double-slash-escape", "fs_read", "//workspace//priv//secret.txt", "vak.capability-ceiling"),
    ("mixed-case", "fs_read", "/WORKSPACE/pub/a.txt", "vak.capability-ceiling"),
    ("sibling-prefix", "fs_read", "/workspace-evil/x", "vak.capability-ceiling"),
    ("prefix-of-grant", "fs_read", "/workspace/pubx", "vak.capability-ceiling"),
    ("nul", "fs_read", "/workspace/pub/a.txt\x00.png", "vak.invalid-target"),
    ("very-long", "fs_read", "/workspace/pub/" + "a/" * 3000, "vak.invalid-target"),
    ("relative", "fs_read", "workspace/pub/a.txt", "vak.invalid-target"),
    ("write-read-only", "fs_write", "/workspace/pub/a.txt", "vak.capability-ceiling"),
    ("list-priv", "fs_list", "/workspace/priv", "vak.capability-ceiling"),
]


@cases(("fn", "path", "policy"), FS_CASES)
def test_fs_escape_denied(world: dict[str, Any], fn: str, path: str, policy: str) -> None:
    sink, h = world["sink"], world["h"]
    n = len(sink.decisions())
    with pytest.raises(PolicyDeniedError) as err:
        call(h, fn, path=path, content="pwned")
    assert err.value.policy_ids == (policy,)
    assert len(sink.decisions()) == n + 1 and sink.decisions()[-1]["decision"]["effect"] == "deny"
    assert sink.by_seq(err.value.audit_seq)["decision"]["policy_ids"] == [policy]
    assert call(h, "fs_read", path="/workspace/pub/a.txt")["content"] == "public"


SYMLINK_CASES = [
    ("abs-dir-link", "fs_read", "/workspace/pub/abs-link/target.txt"),
    ("rel-dir-link", "fs_read", "/workspace/pub/rel-link/secret.txt"),
    ("file-link", "fs_read", "/workspace/pub/file-link"),
    ("list-through-link", "fs_list", "/workspace/pub/rel-link"),
    ("write-through-link", "fs_write", "/workspace/pub/out/write-link"),
]


@cases(("fn", "path"), SYMLINK_CASES)
def test_symlinks_out_of_root_never_followed(world: dict[str, Any], fn: str, path: str) -> None:
    reply = call(world["h"], fn, path=path, content="pwned")
    assert reply["error"] in {"symlink_refused", "not_a_directory"}
    assert SECRET not in orjson.dumps(reply).decode()
    assert (world["outside"] / "target.txt").read_text() == SECRET


NET_CASES = [
    ("decimal-ipv4", "http://2130706433:8080/", "vak.default-deny"),
    ("octal-ipv4", "http://0177.0.0.1:8080/", "vak.default-deny"),
    ("hex-ipv4", "http://0x7f000001:8080/", "vak.default-deny"),
    ("ipv6-loopback", "http://[::1]:8080/", "vak.default-deny"),
    ("ipv4-mapped-loopback", "http://[::ffff:127.0.0.1]:8080/", "vak.default-deny"),
    ("metadata", "http://169.254.169.254/latest/meta-data", "vak.net.forbid-metadata"),
    ("metadata-mapped", "http://[::ffff:169.254.169.254]/", "vak.net.forbid-metadata"),
    ("private", "http://10.0.0.1/", "vak.default-deny"),
    ("cgnat", "http://100.64.0.1/", "vak.default-deny"),
    ("ula", "http://[fc00::1]/", "vak.default-deny"),
    ("multicast", "http://224.0.0.1/", "vak.default-deny"),
    ("unspecified", "http://0.0.0.0/", "vak.default-deny"),
    ("undeclared-host", "http://example.com/", "vak.capability-ceiling"),
    ("undeclared-port", "http://127.0.0.1:8081/", "vak.capability-ceiling"),
    ("file-scheme", "file:///etc/passwd", "vak.invalid-target"),
    ("userinfo", "http://127.0.0.1:8080@evil.com/", "vak.invalid-target"),
    ("zone-id", "http://[fe80::1%25eth0]/", "vak.invalid-target"),
]


@cases(("url", "policy"), NET_CASES)
def test_ssrf_denied(world: dict[str, Any], url: str, policy: str) -> None:
    sink, h = world["sink"], world["h"]
    n = len(sink.entries)
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "http_request", url=url)
    assert err.value.policy_ids == (policy,)
    new = sink.entries[n:]
    assert [k for k, _, _ in new] == ["host_decision"]  # decided, recorded, nothing performed


# --- properties --------------------------------------------------------------------

_SEGMENTS = [
    "pub",
    "priv",
    "out",
    "..",
    ".",
    "",
    "a.txt",
    "secret.txt",
    "PUB",
    "abs-link",
    "rel-link",
    "file-link",
    "write-link",
    "workspace",
    "workspace-evil",
    "x",
]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fn=st.sampled_from(["fs_read", "fs_list", "fs_write"]),
    parts=st.lists(st.sampled_from(_SEGMENTS), max_size=8),
)
def test_property_nothing_outside_grant_is_performed(
    world: dict[str, Any], fn: str, parts: list[str]
) -> None:
    sink, h, ws = world["sink"], world["h"], world["ws"]
    path = "/" + "/".join(parts)
    before = len(sink.decisions())
    try:
        reply = call(h, fn, path=path, content="generated")
    except (PolicyDeniedError, ABIError):
        reply = None
    decisions = sink.decisions()
    assert len(decisions) == before + 1  # every call recorded exactly once
    if reply is not None:
        assert decisions[-1]["decision"]["effect"] == "allow"
        assert SECRET not in orjson.dumps(reply).decode()
    assert (ws / "priv" / "secret.txt").read_text() == SECRET
    assert (world["outside"] / "target.txt").read_text() == SECRET
    assert (ws / "pub" / "a.txt").read_text() == "public"


_NON_PUBLIC = [
    "127.0.0.1",
    "10.1.2.3",
    "169.254.169.254",
    "100.64.1.1",
    "::1",
    "fc00::5",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "224.0.0.9",
    "0.0.0.0",
    "fe80::1",
]


def _host_forms(ip: str) -> st.SearchStrategy[str]:
    if ":" in ip:
        return st.just(f"[{ip}]")
    n = int.from_bytes(bytes(int(o) for o in ip.split(".")), "big")
    return st.sampled_from(
        [ip, str(n), hex(n), ".".join("0" + oct(int(o))[2:] for o in ip.split("."))]
    )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    ip=st.sampled_from(_NON_PUBLIC),
    by_name=st.booleans(),
    port=st.sampled_from([80, 443, 8080]),
    scheme=st.sampled_from(["http", "https"]),
)
def test_property_no_connection_to_non_public(
    world: dict[str, Any], data: st.DataObject, ip: str, by_name: bool, port: int, scheme: str
) -> None:
    performed: list[str] = []
    original = HttpFamily._fetch

    def spy(self: HttpFamily, n: Any, pinned: str, *a: Any) -> dict[str, Any]:
        performed.append(pinned)
        return {"status": 0}

    host = "gen.test" if by_name else data.draw(_host_forms(ip))
    sink = world["sink"]
    before = len(sink.decisions())
    world["resolver"].answer = (ip,)
    h = world["net"].handler(
        context(manifest(http=(f"{host}:{port}", "gen.test:80", "gen.test:443", "gen.test:8080")))
    )
    HttpFamily._fetch = spy  # type: ignore[method-assign]
    try:
        with contextlib.suppress(PolicyDeniedError):
            call(h, "http_request", url=f"{scheme}://{host}:{port}/x")
    finally:
        HttpFamily._fetch = original  # type: ignore[method-assign]
    assert all(classify_ip(p) == "public" for p in performed)
    assert performed == []  # every address here is non-public
    assert len(sink.decisions()) == before + 1
