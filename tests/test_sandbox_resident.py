"""Engine residents (session reuse) and pool exhaustion, on real skills."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sandbox_helpers import HOST_NAMES, load_skill, no_host, small_settings

from vak.errors import CapacityError, FuelExhausted, SkillTimeout, ToolCallError, UnknownToolError
from vak.identity.manifest import Limits
from vak.sandbox.engine import Engine

ADD = orjson.dumps({"operation": "add", "a": 1, "b": 2})


def test_resident_serves_many_calls_on_one_store(tmp_path: Path, built_skills: Path) -> None:
    with Engine(small_settings(tmp_path), HOST_NAMES) as engine:
        digest, limits = load_skill(engine, built_skills / "calculator")
        resident = engine.open_resident(digest, limits)
        store = resident.store.ptr
        outs = [engine.call_resident(resident, "execute", ADD, limits, no_host)
                for _ in range(5)]
        assert {o.output for o in outs} == {b'{"result":3}'}
        assert resident.calls == 5 and resident.store.ptr == store
        # fuel is reset per call: after the first (which sets up the heap) every
        # call reports the same use, far below max_fuel
        assert len({o.fuel_used for o in outs[1:]}) == 1 and 0 < outs[1].fuel_used < 10_000
        resident.close()
        assert resident.closed
        with pytest.raises(UnknownToolError):
            engine.call_resident(resident, "execute", ADD, limits, no_host)


@pytest.mark.parametrize(("skill", "limits", "error"), [
    ("hostile/loop", Limits(max_execution_time_ms=50, max_fuel=10**12), SkillTimeout),
    ("hostile/loop", Limits(max_execution_time_ms=5000, max_fuel=10_000), FuelExhausted),
], ids=["deadline", "fuel"])
def test_resident_limits_apply_per_call_and_failure_closes_it(
        tmp_path: Path, built_skills: Path, skill: str, limits: Limits,
        error: type[Exception]) -> None:
    with Engine(small_settings(tmp_path), HOST_NAMES) as engine:
        digest, _ = load_skill(engine, built_skills / skill)
        resident = engine.open_resident(digest, limits)
        with pytest.raises(error):
            engine.call_resident(resident, "execute", b"{}", limits, no_host)
        assert resident.closed


def test_pool_exhaustion_is_a_capacity_error(tmp_path: Path, built_skills: Path) -> None:
    cfg = small_settings(tmp_path, pool_total_instances=2, pool_total_memories=2,
                       pool_total_tables=2)
    with Engine(cfg, HOST_NAMES) as engine:
        digest, limits = load_skill(engine, built_skills / "calculator")
        held = [engine.open_resident(digest, limits) for _ in range(2)]
        with pytest.raises(CapacityError) as info:
            engine.call(digest, "execute", ADD, limits, no_host)
        assert isinstance(info.value, ToolCallError)
        assert info.value.details["limit"] == 2
        with pytest.raises(CapacityError):
            engine.open_resident(digest, limits)
        # the residents still serve, and a freed slot serves fresh calls again
        assert engine.call_resident(held[0], "execute", ADD, limits, no_host).output
        held[1].close()
        assert engine.call(digest, "execute", ADD, limits, no_host).output == b'{"result":3}'
        held[0].close()


@pytest.mark.parametrize("backend", ["fastcall", "public"])
def test_resident_on_each_backend_keeps_guest_state(tmp_path: Path, built_skills: Path,
                                                    backend: str) -> None:
    """Session reuse works on the public-API fallback as on the fast path."""
    with Engine(small_settings(tmp_path), HOST_NAMES, backend=backend) as engine:
        digest, limits = load_skill(engine, built_skills / "calculator")
        resident = engine.open_resident(digest, limits)
        outs = [engine.call_resident(resident, "execute", ADD, limits, no_host)
                for _ in range(3)]
        assert {o.output for o in outs} == {b'{"result":3}'} and resident.calls == 3
        loop, _ = load_skill(engine, built_skills / "hostile" / "loop")
        trapped = engine.open_resident(loop, limits)
        with pytest.raises(SkillTimeout):
            engine.call_resident(trapped, "execute", b"{}",
                                 Limits(max_execution_time_ms=30, max_fuel=10**12), no_host)
        assert trapped.closed  # a trapped instance is never reused
        resident.close()
