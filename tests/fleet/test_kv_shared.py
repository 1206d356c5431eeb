"""kv_incr / kv_cas on both stores (SQLite, PostgreSQL), and four kernels losing no update."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vak.config import KernelConfig
from vak.host.base import HostEffectError
from vak.host.kv import KvStore, counter_value
from vak.kernel import Kernel

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """A factory of stores sharing one database (each call: a new connection)."""
    made: list[Any] = []
    if request.param == "sqlite":
        def make() -> Any:
            made.append(KvStore(tmp_path / "kv.sqlite3"))
            return made[-1]
    else:
        from vak.fleet.kvstore import PostgresKV

        dsn = request.getfixturevalue("dsn")

        def make() -> Any:
            made.append(PostgresKV(dsn))
            return made[-1]
    yield make
    for s in made:
        s.close()


def test_incr_counts_from_zero_and_keeps_labels(make_store: Any) -> None:
    kv = make_store()
    value, carry = kv.incr("ns", "n", 1, ["secret:a"])
    assert value == 1 and carry <= {"secret:a"}  # at most the writer's own
    value, carry = kv.incr("ns", "n", -3, ["fs:/w"])
    assert value == -2 and {"secret:a"} <= carry <= {"secret:a", "fs:/w"}
    assert kv.get_labeled("ns", "n") == ("-2", frozenset({"secret:a", "fs:/w"}))
    assert kv.get_labeled("other", "n") is None  # namespaces stay apart


@pytest.mark.parametrize("stored", ["x", "1.5", "01", "-0", " 1", "1e3", "99999999999999999"])
def test_incr_refuses_a_value_that_is_not_a_counter(make_store: Any, stored: str) -> None:
    kv = make_store()
    kv.put("ns", "n", stored)
    with pytest.raises(HostEffectError) as info:
        kv.incr("ns", "n", 1, [])
    assert info.value.code == "kv_not_integer"
    assert kv.get_labeled("ns", "n") == (stored, frozenset())  # unchanged


def test_incr_overflow_is_refused() -> None:
    with pytest.raises(HostEffectError) as info:
        counter_value(str((1 << 53) - 1), 1)
    assert info.value.code == "kv_overflow"


def test_cas_writes_only_on_the_expected_value(make_store: Any) -> None:
    kv = make_store()
    assert kv.cas("ns", "k", None, "a", ["l1"]) == (True, None, frozenset())
    assert kv.cas("ns", "k", None, "b", []) == (False, "a", frozenset({"l1"}))
    assert kv.cas("ns", "k", "x", "b", []) == (False, "a", frozenset({"l1"}))
    assert kv.cas("ns", "k", "a", "b", []) == (True, None, frozenset())
    assert kv.get_labeled("ns", "k") == ("b", frozenset())
    assert kv.cas("ns", "missing", "a", "b", []) == (False, None, frozenset())


def test_four_stores_incrementing_one_counter_lose_nothing(make_store: Any) -> None:
    stores = [make_store() for _ in range(4)]
    per = 150

    def run(kv: Any) -> None:
        for _ in range(per):
            kv.incr("ns", "n", 1, [])

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].get_labeled("ns", "n") == (str(4 * per), frozenset())


def test_keys_prefix_is_literal(make_store: Any) -> None:
    kv = make_store()
    for key in ("a%", "ab", "a_c"):
        kv.put("ns", key, "v")
    assert kv.keys_labeled("ns", "a%", 10)[0] == ["a%"]
    assert kv.keys_labeled("ns", "a_", 10)[0] == ["a_c"]


# ------------------------------------------------------------------ real kernels
def _kvstore_skill(demo: Path, root: Path) -> Path:
    from vak.identity.keys import load_signing_key
    from vak.identity.signing import sign_skill

    dest = root / "kvstore"
    shutil.copytree(REPO / "skills" / "kvstore", dest)
    sign_skill(dest, load_signing_key(demo.parent / "keys" / "demo-signer.key"))
    return dest


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_four_kernels_incrementing_one_counter_lose_no_update(
        demo: Path, tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> None:
    skill = _kvstore_skill(demo, tmp_path)
    base = KernelConfig.from_toml(demo)
    shared: dict[str, Any] = ({"kv_path": tmp_path / "shared-kv.sqlite3"} if backend == "sqlite"
                              else {"kv": request.getfixturevalue("dsn")})
    kernels = [Kernel(base.with_(audit_log=tmp_path / f"k{n}" / "vak.log",
                                 audit_key=tmp_path / f"k{n}" / "log.key",
                                 audit_hmac_key=tmp_path / f"k{n}" / "args.hmac",
                                 audit_origin=f"kv.test/kernel-{n}", **shared))
               for n in range(4)]
    per = 25
    errors: list[BaseException] = []

    def run(k: Kernel) -> None:
        try:
            for _ in range(per):
                k.invoke("kvstore__incr", {"key": "visits"})
        except BaseException as exc:  # reported below, with the kernel's own message
            errors.append(exc)

    try:
        for k in kernels:
            k.load_skill(skill)
        threads = [threading.Thread(target=run, args=(k,)) for k in kernels]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        final = kernels[0].invoke("kvstore__get", {"key": "visits"}).output
        assert final == {"found": True, "value": str(4 * per)}
        swap = kernels[1].invoke("kvstore__cas", {"key": "visits", "expected": str(4 * per),
                                                  "value": "0"}).output
        assert swap == {"ok": True}
        stale = kernels[2].invoke("kvstore__cas", {"key": "visits", "expected": str(4 * per),
                                                   "value": "1"}).output
        assert stale == {"ok": False, "found": True, "value": "0"}
    finally:
        for k in kernels:
            k.close()
