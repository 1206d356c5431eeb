"""The worker pool running real skills (built from source) through the real
sandbox Engine inside restricted workers: results, mediated host calls, typed
guest failures crossing the pipe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sandbox_helpers import Echo, worker_pool

from vak.errors import ABIError, OutputStructureError, PolicyDeniedError, SkillTimeout
from vak.identity.manifest import Limits
from vak.sandbox import oslock
from vak.sandbox.engine import module_digest
from vak.sandbox.pool import WorkerPool

pytestmark = pytest.mark.skipif(not oslock.barrier_status().complete,
                                reason="kernel lacks Landlock+seccomp")


@pytest.fixture(scope="module")
def pool(built_skills: Path) -> Iterator[tuple[WorkerPool, dict[str, str]]]:
    digests: dict[str, str] = {}
    cfg = dict(pool_size=1, require_os_sandbox=True, hang_margin_ms=500)
    with worker_pool(**cfg) as p:
        for name, wasm in [("calculator", "calculator/calculator.wasm"),
                           ("kvstore", "kvstore/kvstore.wasm"),
                           ("loop", "hostile/loop/loop.wasm"),
                           ("oob", "hostile/oob/oob.wasm"),
                           ("deepnest", "hostile/deepnest/deepnest.wasm"),
                           ("reenter", "hostile/reenter/reenter.wasm")]:
            data = (built_skills / wasm).read_bytes()
            digests[name] = module_digest(data)
            p.register(digests[name], data)
        for d in digests.values():
            p.wait_ready(d)
        yield p, digests


def test_calculator_in_worker(pool: tuple[WorkerPool, dict[str, str]]) -> None:
    p, d = pool
    out = p.call(d["calculator"], "execute", b'{"operation":"multiply","a":6,"b":7}',
                 Limits(), lambda f, a: b"{}")
    assert orjson.loads(out.output) == {"result": 42}
    assert out.host_calls == 0
    barriers = p.barriers()
    assert barriers is not None and barriers["applied"] and barriers["threads_at_restrict"] == 1


def test_mediated_host_call_from_wasm(pool: tuple[WorkerPool, dict[str, str]]) -> None:
    p, d = pool
    seen: list[tuple[str, object]] = []

    def host(function: str, args: bytes) -> bytes:
        seen.append((function, orjson.loads(args)))
        return b'{"value":"v1"}'

    out = p.call(d["kvstore"], "get", b'{"key":"k1"}', Limits(max_host_calls=4), host)
    assert orjson.loads(out.output) == {"value": "v1"}
    assert seen == [("kv_get", {"key": "k1"})]
    assert out.host_calls == 1


def test_denied_host_call_from_wasm(pool: tuple[WorkerPool, dict[str, str]]) -> None:
    p, d = pool
    denied = PolicyDeniedError("no", policy_ids=["forbid-kv"])

    def host(function: str, args: bytes) -> bytes:
        raise denied

    before = p.pids(d["kvstore"])
    with pytest.raises(PolicyDeniedError) as info:
        p.call(d["kvstore"], "put", b'{"key":"k","value":"v"}', Limits(), host)
    assert info.value is denied
    assert p.pids(d["kvstore"]) == before  # the worker is healthy and kept


def test_runaway_loop_is_a_typed_timeout(pool: tuple[WorkerPool, dict[str, str]]) -> None:
    p, d = pool
    with pytest.raises(SkillTimeout):
        p.call(d["loop"], "execute", b"{}", Limits(max_execution_time_ms=50, max_fuel=10**12),
               lambda f, a: b"{}")
    p.wait_ready(d["loop"])


def test_invalid_module_fails_typed_and_retries(built_skills: Path) -> None:
    from vak.errors import SkillLoadError

    bad = b"\x00asm\x01\x00\x00\x00\xff"
    with worker_pool(pool_size=1) as p:
        p.register(module_digest(bad), bad)
        for _ in range(2):  # the failure is not sticky: each call tries a fresh worker
            with pytest.raises(SkillLoadError):
                p.call(module_digest(bad), "execute", b"{}", Limits(), lambda f, a: b"{}")


@pytest.mark.parametrize("export", ["execute", "deep100k", "wide"])
def test_worker_reports_its_engines_typed_error(pool: tuple[WorkerPool, dict[str, str]],
                                                export: str) -> None:
    """The error the worker's engine raised crosses the pipe as itself, and the
    worker is kept (a guest failure is not a worker failure)."""
    p, d = pool
    before = p.pids(d["deepnest"])
    with pytest.raises(OutputStructureError) as info:
        p.call(d["deepnest"], export, b"{}", Limits(max_memory_pages=64), Echo())
    assert info.value.details["bound"] in ("max_depth", "max_items")
    assert p.pids(d["deepnest"]) == before


@pytest.mark.parametrize(("skill", "export"), [
    ("oob", "hostarg"), ("oob", "hostlen"), ("reenter", "execute"),
])
def test_refusals_reach_the_parents_handler(pool: tuple[WorkerPool, dict[str, str]],
                                            skill: str, export: str) -> None:
    """A span the worker's engine refuses is decided by the parent's handler
    (``refuse``), exactly once, and its error is what the caller sees."""
    p, d = pool
    handler = Echo()
    with pytest.raises(ABIError) as info:
        p.call(d[skill], export, b"{}", Limits(), handler)
    assert [r[:2] for r in handler.refusals] == [("log", "vak.invalid-args")]
    assert info.value.details["policy_id"] == "vak.invalid-args"
    p.wait_ready(d[skill])


def test_unrecordable_refusal_is_the_cause_on_the_worker_route(
    pool: tuple[WorkerPool, dict[str, str]],
) -> None:
    from vak.errors import AuditError

    class Unrecordable(Echo):
        def refuse(self, function: str, policy_id: str, reason: str) -> BaseException:
            raise AuditError("audit log poisoned")

    p, d = pool
    with pytest.raises(AuditError, match="poisoned"):
        p.call(d["oob"], "hostarg", b"{}", Limits(), Unrecordable())
    p.wait_ready(d["oob"])
