"""Components: the WIT world, the binding onto the one HostHandler, load-time checks, cache."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import orjson
import pytest
import wasmtime
from component_helpers import (
    Compiled,
    Files,
    component_bytes,
)
from hypothesis import given
from hypothesis import strategies as st
from sandbox_helpers import HOST_NAMES

from vak._resources import wit_dir
from vak.errors import (
    ABIError,
    DigestMismatchError,
    PolicyDeniedError,
    SkillLoadError,
    UnknownToolError,
)
from vak.host.catalog import host_function
from vak.sandbox.component import allowed_interface
from vak.sandbox.engine import Engine, module_digest
from vak.sandbox.kinds import binary_kind
from vak.sandbox.settings import EngineSettings
from vak.sandbox.wit_binding import BINDINGS, ArgumentRefused, ReplyShapeError, record

WIT = (wit_dir() / "skill.wit").read_text(encoding="utf-8")


# ---------------------------------------------------------------- the WIT package
def test_wit_package_is_versioned_package_data() -> None:
    assert re.search(r"^package vak:skill@0\.1\.0;", WIT, re.M)
    assert "world skill {" in WIT


def _wit_functions() -> set[tuple[str, str]]:
    """``(interface, function)`` of every host function the WIT file declares."""
    found = set()
    for iface, body in re.findall(r"^interface ([a-z-]+) \{(.*?)^\}", WIT, re.M | re.S):
        for fn in re.findall(r"^\s*%?([a-z-]+): func\(", body, re.M):
            found.add((f"vak:skill/{iface}", fn))
    return found


def test_every_wit_host_function_has_a_binding_to_a_catalog_row() -> None:
    declared = _wit_functions() - {("vak:skill/tool", "call")}
    assert declared == set(BINDINGS)
    for binding in BINDINGS.values():
        assert host_function(binding.host_function) is not None


@given(st.text(), st.text())
def test_kv_put_arguments_are_the_core_abi_json(key: str, value: str) -> None:
    b = BINDINGS[("vak:skill/kv", "put")]
    assert b.args(key, value) == {"key": key, "value": value}


@given(st.text(min_size=1), st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_fs_read_arguments_omit_an_absent_bound(path: str, max_bytes: int | None) -> None:
    args = BINDINGS[("vak:skill/fs", "read")].args(path, max_bytes)
    assert args["path"] == path
    assert ("max_bytes" in args) == (max_bytes is not None)


def test_http_request_with_a_repeated_header_is_refused() -> None:
    req = record(method="GET", url="http://x/", body="", max_bytes=None,
                 headers=[record(name="X-A", value="1"), record(name="x-a", value="2")])
    with pytest.raises(ArgumentRefused):
        BINDINGS[("vak:skill/http", "send")].args(req)


def test_failure_replies_become_the_typed_host_error() -> None:
    read = BINDINGS[("vak:skill/fs", "read")].reply
    missing = read({"error": "not_found", "message": "no such file or directory"})
    assert (missing.tag, missing.payload.code) == ("not-found", "not_found")
    other = read({"error": "outside_root", "message": "path escapes its mount"})
    assert other.tag == "failed"
    ok = read({"content_b64": "AAE=", "truncated": True})
    assert (ok.content, ok.truncated) == (b"\0\x01", True)


@pytest.mark.parametrize(("key", "reply"), [
    (("vak:skill/fs", "read"), {"content": 3, "truncated": False}),
    (("vak:skill/fs", "read"), {"content_b64": "!!", "truncated": False}),
    (("vak:skill/fs", "list"), {"entries": [{"name": "a", "type": "socket"}], "truncated": False}),
    (("vak:skill/clock", "now"), {"unix_ns": -1, "monotonic_ns": 0}),
    (("vak:skill/kv", "get"), {"found": True}),
    (("vak:skill/http", "send"), {"status": 70000, "headers": {}, "body": "", "truncated": False}),
    (("vak:skill/log", "write"), {"error": "host_failure", "message": "m"}),
])
def test_replies_of_the_wrong_shape_are_never_guessed_at(key: tuple[str, str],
                                                        reply: dict[str, object]) -> None:
    with pytest.raises(ReplyShapeError):
        BINDINGS[key].reply(reply)


@pytest.mark.parametrize(("name", "allowed"), [
    ("vak:skill/fs@0.1.0", True), ("vak:skill/types@0.1.0", True),
    ("wasi:cli/environment@0.2.9", True), ("wasi:sockets/tcp@0.2.0", True),
    ("vak:skill/fs@0.2.0", False), ("vak:skill/evil@0.1.0", False),
    ("wasi:http/outgoing-handler@0.2.0", False), ("wasi:cli/environment@0.3.0", False),
    ("wasi:filesystem/types@0.2.0x", False), ("env", False),
])
def test_import_allowlist(name: str, allowed: bool) -> None:
    assert allowed_interface(name) is allowed


def test_binary_kind_tells_the_two_layers_apart() -> None:
    assert binary_kind(component_bytes("pynotes")) == "component"
    assert binary_kind(b"\0asm\x01\0\0\0") == "core"
    assert binary_kind(b"\0asm") == "unknown"


# ---------------------------------------------------------------- load-time refusals
@pytest.fixture(scope="module")
def bare_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(EngineSettings(pool_total_instances=64, pool_total_memories=64,
                                 pool_total_tables=64), HOST_NAMES)


def _wat_component(engine: Engine, text: str) -> tuple[bytes, str]:
    """A component binary from the component text format."""
    binary = bytes(wasmtime.wat2wasm(text))
    assert binary_kind(binary) == "component"
    return binary, module_digest(binary)


@pytest.mark.parametrize("interface", [
    "wasi:http/outgoing-handler@0.2.0", "vak:skill/evil@0.1.0", "vak:skill/fs@0.2.0",
    "wasi:sockets/tcp@0.3.0",
])
def test_a_component_importing_an_interface_vak_does_not_offer_is_refused_naming_it(
        bare_engine: Engine, interface: str) -> None:
    binary, digest = _wat_component(
        bare_engine, f'(component (import "{interface}" (instance)))')
    with pytest.raises(ABIError) as info:
        bare_engine.compile_component(binary, digest)
    assert interface in info.value.message
    assert info.value.details["import_name"] == interface


def test_a_component_without_the_tool_export_is_refused(bare_engine: Engine) -> None:
    binary, digest = _wat_component(bare_engine, "(component)")
    with pytest.raises(ABIError, match=r"vak:skill/tool@0\.1\.0"):
        bare_engine.compile_component(binary, digest)


def test_a_core_module_is_not_a_component(bare_engine: Engine) -> None:
    core = bytes(wasmtime.wat2wasm("(module)"))
    with pytest.raises(SkillLoadError):
        bare_engine.compile_component(core, module_digest(core))


def test_component_digest_is_rechecked(bare_engine: Engine) -> None:
    binary, _ = _wat_component(bare_engine, "(component)")
    with pytest.raises(DigestMismatchError):
        bare_engine.compile_component(binary, "0" * 64)


# ---------------------------------------------------------------- calls through the handler
def test_host_calls_reach_the_handler_with_the_core_abi_arguments(
        components: Compiled) -> None:
    host = Files()
    digest, limits = components.digests["pynotes"], components.limits["pynotes"]
    out = components.engine.call(digest, "read_note", b'{"path":"/data/a.txt"}', limits, host)
    assert orjson.loads(out.output) == {"content": "note at /data/a.txt", "truncated": False}
    assert host.calls == [
        ("fs_read", b'{"path":"/data/a.txt"}'),
        ("kv_put", b'{"key":"last","value":"/data/a.txt"}'),
        ("log", b'{"level":"info","message":"read a note"}'),
    ]
    assert out.host_calls == 3 and out.fuel_used > 0
    last = components.engine.call(digest, "last", b"{}", limits, host)
    assert orjson.loads(last.output) == {"last": "/data/a.txt"}


def test_an_ordinary_failure_is_a_reply_the_skill_handles(components: Compiled) -> None:
    out = components.engine.call(components.digests["pynotes"], "read_note",
                                 b'{"path":"/data/missing"}', components.limits["pynotes"],
                                 Files())
    assert orjson.loads(out.output) == {"error": "not_found", "code": "not_found"}


def test_a_denial_is_a_trap_re_raised_unchanged_and_nothing_runs_after_it(
        components: Compiled) -> None:
    host = Files(deny="/etc/passwd")
    with pytest.raises(PolicyDeniedError):
        components.engine.call(components.digests["pynotes"], "read_note",
                               b'{"path":"/etc/passwd"}', components.limits["pynotes"], host)
    assert [fn for fn, _ in host.calls] == ["fs_read"]  # no kv_put after the denial
    ok = components.engine.call(components.digests["pynotes"], "last", b"{}",
                                components.limits["pynotes"], Files())
    assert orjson.loads(ok.output) == {"last": None}  # a fresh store per call


def test_restart_loads_the_component_from_the_keyed_cache(components: Compiled) -> None:
    with Engine(EngineSettings(module_cache_dir=components.cache), HOST_NAMES) as again:
        data = component_bytes("pynotes")
        compiled = again.compile_component(data, module_digest(data))
        assert compiled.from_cache
        out = again.call(compiled.digest, "read_note", b'{"path":"/x"}',
                         components.limits["pynotes"], Files())
        assert orjson.loads(out.output)["content"] == "note at /x"


# ---------------------------------------------------------------- session residents
def _count(engine: Engine, resident: object, limits: object) -> int:
    out = engine.call_resident(resident, "count", b"{}", limits, Files())  # type: ignore[arg-type]
    return int(orjson.loads(out.output)["count"])


def test_a_resident_component_keeps_its_state_between_calls(components: Compiled) -> None:
    engine = components.engine
    digest, limits = components.digests["pyhostile"], components.limits["pyhostile"]
    resident = engine.open_resident(digest, limits)
    try:
        assert [_count(engine, resident, limits) for _ in range(3)] == [1, 2, 3]
        # a fresh store per plain call: it never sees the resident's globals
        fresh = engine.call(digest, "count", b"{}", limits, Files())
        assert orjson.loads(fresh.output) == {"count": 1}
        other = engine.open_resident(digest, limits)
        try:
            assert _count(engine, other, limits) == 1  # two residents share nothing
        finally:
            other.close()
        assert _count(engine, resident, limits) == 4
    finally:
        resident.close()
    assert resident.closed


@pytest.mark.parametrize(("export", "error"), [
    ("spin", "SkillTimeout"), ("garbage", "ABIError"), ("big", "OutputTooLarge"),
], ids=["deadline", "garbage-output", "output-too-large"])
def test_a_resident_component_is_discarded_after_any_failure(
        components: Compiled, export: str, error: str) -> None:
    engine = components.engine
    digest, limits = components.digests["pyhostile"], components.limits["pyhostile"]
    resident = engine.open_resident(digest, limits)
    try:
        assert _count(engine, resident, limits) == 1
        with pytest.raises(Exception) as info:
            engine.call_resident(resident, export, b'{"n": 200000}', limits, Files())
        assert type(info.value).__name__ == error
        assert resident.closed
        with pytest.raises(UnknownToolError):
            _count(engine, resident, limits)
    finally:
        resident.close()
    again = engine.open_resident(digest, limits)
    try:
        assert _count(engine, again, limits) == 1  # fresh state
    finally:
        again.close()


def test_a_resident_component_denial_closes_it(components: Compiled) -> None:
    engine = components.engine
    digest, limits = components.digests["pynotes"], components.limits["pynotes"]
    resident = engine.open_resident(digest, limits)
    try:
        with pytest.raises(PolicyDeniedError):
            engine.call_resident(resident, "read_note", b'{"path":"/etc/passwd"}', limits,
                                 Files(deny="/etc/passwd"))
        assert resident.closed
    finally:
        resident.close()


# ---------------------------------------------------------------- the worker route
def _worker_read(pool: object, digest: str, limits: object) -> dict[str, object]:
    out = pool.call(digest, "read_note", b'{"path":"/x"}', limits, Files())  # type: ignore[attr-defined]
    return orjson.loads(out.output)  # type: ignore[no-any-return]


def test_a_worker_is_served_the_compiled_component_from_the_keyed_cache(
        components: Compiled) -> None:
    from sandbox_helpers import worker_pool

    data = component_bytes("pynotes")
    digest, limits = components.digests["pynotes"], components.limits["pynotes"]
    settings = EngineSettings(module_cache_dir=components.cache)
    # only the first bytes of the module: a worker that compiled it would fail (the
    # digest does not match); one served the parent's cache entry never reads them
    with worker_pool(engine=settings, pool_size=1, start_timeout_ms=180_000,
                     allow_unsandboxed=True) as pool:
        pool.register(digest, data[:64])
        assert _worker_read(pool, digest, limits)["content"] == "note at /x"


def test_a_tampered_cache_entry_is_never_sent_to_a_worker(components: Compiled,
                                                           tmp_path: Path) -> None:
    from sandbox_helpers import worker_pool

    data = component_bytes("pynotes")
    digest, limits = components.digests["pynotes"], components.limits["pynotes"]
    cache = tmp_path / "cache"
    shutil.copytree(components.cache, cache)
    for entry in cache.glob("*.cwasm"):
        blob = bytearray(entry.read_bytes())
        blob[-1] ^= 1  # one flipped bit: the HMAC no longer verifies
        entry.write_bytes(bytes(blob))
    settings = EngineSettings(module_cache_dir=cache)
    with worker_pool(engine=settings, pool_size=1, start_timeout_ms=180_000,
                     allow_unsandboxed=True) as pool:
        pool.register(digest, data)  # the worker compiles the real module itself
        assert _worker_read(pool, digest, limits)["content"] == "note at /x"


# ---------------------------------------------------------------- resources
def test_an_engine_is_freed_when_dropped_even_after_a_trap(components: Compiled) -> None:
    """No reference cycle keeps an engine (and its pooled address space) until a GC."""
    import gc
    import weakref

    from vak.errors import SkillTimeout

    gc.collect()
    gc.disable()
    try:
        engine = Engine(EngineSettings(module_cache_dir=components.cache), HOST_NAMES)
        data = component_bytes("pyhostile")
        engine.compile_component(data, module_digest(data))
        with pytest.raises(SkillTimeout):
            engine.call(module_digest(data), "spin", b"{}", components.limits["pyhostile"],
                        Files())
        engine.close()
        alive = weakref.ref(engine)
        del engine
        assert alive() is None
    finally:
        gc.enable()
