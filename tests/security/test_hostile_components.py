"""Hostile Python components: each attack ends in a typed error or a refused effect,
and the engine keeps serving (a well-behaved component answers right after)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest
from component_helpers import Compiled, Files

from vak.errors import (
    ABIError,
    FuelExhausted,
    MemoryLimitExceeded,
    OutputTooLarge,
    SkillTimeout,
    StackOverflow,
    ToolCallError,
)


def _still_serving(c: Compiled) -> None:
    out = c.engine.call(c.digests["pynotes"], "last", b"{}", c.limits["pynotes"], Files())
    assert orjson.loads(out.output) == {"last": None}


def _call(c: Compiled, tool: str, args: dict[str, object], **limits: int) -> dict[str, object]:
    lim = replace(c.limits["pyhostile"], **limits)
    out = c.engine.call(c.digests["pyhostile"], tool, orjson.dumps(args), lim, Files())
    result = orjson.loads(out.output)
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize(("tool", "args", "limits", "error"), [
    # a deadline well below what the fuel allows: the epoch stops it
    ("spin", {}, {"max_execution_time_ms": 100, "max_fuel": 10**15}, SkillTimeout),
    ("spin", {}, {"max_fuel": 50_000_000}, FuelExhausted),
    ("bomb", {}, {"max_memory_pages": 512}, MemoryLimitExceeded),
    ("recurse", {}, {}, StackOverflow),
    ("big", {"n": 200_000}, {"max_output_bytes": 65536}, OutputTooLarge),
    ("garbage", {}, {}, ABIError),
])
def test_hostile_component_ends_in_its_typed_error(
        components: Compiled, tool: str, args: dict[str, object],
        limits: dict[str, int], error: type[ToolCallError]) -> None:
    with pytest.raises(error):
        _call(components, tool, args, **limits)
    _still_serving(components)


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on 127.0.0.1 that records whatever reaches it."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            got.append(b"<connection>" + conn.recv(64))
            conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], got
    finally:
        stop.set()
        t.join(2)
        srv.close()


def test_no_tcp_connect_and_no_name_lookup_reach_the_network(
        components: Compiled, listener: tuple[int, list[bytes]]) -> None:
    port, got = listener
    connect = _call(components, "connect", {"port": port})
    assert connect["connected"] is False
    for host in ("localhost", "127.0.0.1"):
        lookup = _call(components, "lookup", {"host": host, "port": port})
        assert lookup["resolved"] is False
    # the listener was reachable all along: the refusal is the sandbox's
    probe = socket.create_connection(("127.0.0.1", port), timeout=2)
    probe.sendall(b"probe")
    probe.close()
    for _ in range(50):
        if got:
            break
        threading.Event().wait(0.05)
    assert got == [b"<connection>probe"]
    _still_serving(components)


@pytest.mark.parametrize("path", ["/etc/passwd", "/proc/self/environ", "../etc/passwd", "."])
def test_wasi_reaches_no_host_file(components: Compiled, path: str) -> None:
    out = _call(components, "passwd", {"path": path})
    assert out["read"] is False


def test_wasi_gives_no_environment_arguments_stdin_or_directories(
        components: Compiled, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAK_TEST_SECRET", "s3cr3t")
    out = _call(components, "environ", {})
    assert out["env"] == {}
    assert out["argv"] == []
    assert out["stdin"] == ""
    assert out["cwd_list"] == "<FileNotFoundError>"


def test_stdout_and_stderr_are_bounded_and_dropped(components: Compiled) -> None:
    # 0.5 MB to each stream: dropped beyond the bound, the call still answers
    assert _call(components, "shout", {"n": 500}, max_execution_time_ms=10_000) == {"ok": True}
    _still_serving(components)


def test_arguments_the_json_abi_cannot_carry_are_refused_through_the_handler(
        components: Compiled) -> None:
    host = Files()
    lim = components.limits["pyhostile"]
    with pytest.raises(ABIError):
        components.engine.call(components.digests["pyhostile"], "dupheaders", b"{}", lim, host)
    # recorded as one refusal by the handler (the mediation: one host_decision deny),
    # and nothing was sent
    assert [(fn, pid) for fn, pid, _ in host.refusals] == [("http_request", "vak.invalid-args")]
    assert host.calls == []
    _still_serving(components)


def test_mediated_clock_and_random_convert_to_wit(components: Compiled) -> None:
    host = Files()
    out = components.engine.call(components.digests["pyhostile"], "clock", b"{}",
                                 components.limits["pyhostile"], host)
    assert orjson.loads(out.output) == {"unix_ns": 7, "monotonic_ns": 8, "random": 16}
    assert [fn for fn, _ in host.calls] == ["clock_now", "random_bytes"]
    assert host.calls[1][1] == b'{"n":16}'
