"""Opt-in per-session instance reuse (``KernelConfig.session_reuse``) on a real kernel.

The counter skill (see ``kernel_helpers.COUNTER_WAT``) answers how many times
its instance has been called (mod 10), which makes reuse observable: a fresh
instance answers 1, a reused one 2, 3, ...
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_helpers import DemoState, counter_skill, verify

from vak.config import KernelConfig
from vak.errors import ConfigError, GuestTrap
from vak.kernel import Kernel

ADD = {"operation": "add", "a": 1, "b": 2}


def _kernel(state: DemoState, root: Path, **changes: object) -> Kernel:
    cfg = KernelConfig.from_toml(state.config).with_(**changes)
    k = Kernel(cfg)
    k.load_skill(counter_skill(state, root))
    return k


@pytest.fixture
def reuse(demo_state: DemoState, tmp_path: Path) -> Iterator[Kernel]:
    with _kernel(demo_state, tmp_path, session_reuse=True) as k:
        yield k


def _n(k: Kernel, session: str | None = None) -> int:
    return int(k.invoke("counter__execute", {}, session=session).output["n"])


def test_same_session_reuses_its_instance(reuse: Kernel) -> None:
    assert [_n(reuse, "a") for _ in range(3)] == [1, 2, 3]


def test_sessions_never_share_an_instance(reuse: Kernel) -> None:
    assert [_n(reuse, "a"), _n(reuse, "b"), _n(reuse, "a"), _n(reuse, "b")] == [1, 1, 2, 2]


def test_calls_without_session_get_a_fresh_instance(reuse: Kernel) -> None:
    assert [_n(reuse), _n(reuse), _n(reuse, "")] == [1, 1, 1]


def test_reuse_is_off_by_default(demo_state: DemoState, tmp_path: Path) -> None:
    with _kernel(demo_state, tmp_path) as k:
        assert [_n(k, "a") for _ in range(3)] == [1, 1, 1]
        assert k.end_session("a") == 0


def test_a_trap_discards_the_instance(reuse: Kernel) -> None:
    assert [_n(reuse, "a"), _n(reuse, "a")] == [1, 2]
    with pytest.raises(GuestTrap):
        reuse.invoke("counter__trap", {}, session="a")
    assert _n(reuse, "a") == 1  # the trapped instance was not kept


def test_end_session_frees_the_instance(reuse: Kernel) -> None:
    assert [_n(reuse, "a"), _n(reuse, "a"), _n(reuse, "b")] == [1, 2, 1]
    assert reuse.end_session("a") == 1
    assert reuse.end_session("a") == 0
    assert [_n(reuse, "a"), _n(reuse, "b")] == [1, 2]


def test_live_sessions_are_bounded_lru(demo_state: DemoState, tmp_path: Path) -> None:
    with _kernel(demo_state, tmp_path, session_reuse=True, session_max_live=2) as k:
        assert [_n(k, "a"), _n(k, "b"), _n(k, "a")] == [1, 1, 2]
        assert _n(k, "c") == 1  # evicts b, the least recently used
        assert [_n(k, "a"), _n(k, "c"), _n(k, "b")] == [3, 2, 1]


def test_other_skills_in_a_session_are_unaffected(reuse: Kernel) -> None:
    for _ in range(3):
        assert reuse.invoke("calculator__execute", ADD, session="a").output == {"result": 3}
    assert _n(reuse, "a") == 1


def test_one_session_from_two_threads_is_serialised(reuse: Kernel) -> None:
    seen: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(50):
                n = _n(reuse, "shared")
                with lock:
                    seen.append(n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # 100 serialised calls on one instance counted 1..100: each digit exactly 10 times
    assert collections.Counter(seen) == {d: 10 for d in range(10)}


def test_reused_calls_are_audited_as_such(demo_state: DemoState, tmp_path: Path) -> None:
    with _kernel(demo_state, tmp_path, session_reuse=True) as k:
        inv = k.invoke("counter__execute", {}, session="a")
        fresh = k.invoke("counter__execute", {})
    by_seq = {e["seq"]: e for e in map(json.loads, demo_state.log.read_text().splitlines())}
    assert by_seq[inv.audit_seq_started]["instance"] == "session"
    assert "instance" not in by_seq[fresh.audit_seq_started]
    assert verify(demo_state) is not None


def test_session_max_live_must_leave_pool_slots(demo_state: DemoState) -> None:
    cfg = KernelConfig.from_toml(demo_state.config).with_(
        session_reuse=True, session_max_live=10, pool_total_instances=10)
    with pytest.raises(ConfigError, match="session_max_live"):
        Kernel(cfg)


def test_skill_loads_are_audited(demo_state: DemoState, tmp_path: Path) -> None:
    with _kernel(demo_state, tmp_path) as k:
        calc = next(s for s in k.skills() if s.name == "calculator")
        inv = k.invoke("counter__execute", {})
    entries = [json.loads(line) for line in demo_state.log.read_text().splitlines()]
    loads = {e["skill"]["id"]: e for e in entries if e["kind"] == "skill_loaded"}
    assert {"calculator", "notes", "fetch", "loop", "counter"} <= set(loads)
    entry = loads["calculator"]
    assert entry["tools"] == ["calculator__execute"] and entry["route"] == "engine"
    assert entry["skill"]["module_sha256"] == f"sha256:{calc.module_sha256}"
    assert entry["skill"]["tier"] == "trusted" and entry["skill"]["signer"].startswith("ed25519:")
    assert entry["skill"]["manifest_digest"].startswith("sha256:")
    assert loads["counter"]["tools"] == ["counter__execute", "counter__trap"]
    counter_seq = max(e["seq"] for e in entries if e["kind"] == "skill_loaded"
                      and e["skill"]["id"] == "counter")
    assert counter_seq < inv.audit_seq_started  # loaded (and recorded) before called
    assert verify(demo_state) is not None


def test_a_load_that_cannot_be_audited_is_undone(demo_state: DemoState, tmp_path: Path) -> None:
    from vak.errors import AuditError, UnknownToolError

    with Kernel.from_config(demo_state.config) as k:
        real = k.audit.append

        def refuse(kind: str, fields: object, **kw: object) -> object:
            if kind == "skill_loaded":
                raise AuditError("disk full")
            return real(kind, fields, **kw)  # type: ignore[arg-type]

        k._audit.append = refuse  # type: ignore[method-assign]
        with pytest.raises(AuditError):
            k.load_skill(counter_skill(demo_state, tmp_path))
        with pytest.raises(UnknownToolError):
            k.invoke("counter__execute", {})
        assert "counter" not in {s.name for s in k.skills()}
        k._audit.append = real  # type: ignore[method-assign]
