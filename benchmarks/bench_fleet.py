"""Fleet store throughput against a real PostgreSQL (a dev server in the scratch dir).

* ``vak-audit ship`` (``ship_log``: every line checked, roots and signatures
  verified, COPY) in entries per second vs a bare COPY of the same lines into
  an unindexed table; target at least 50,000/s;
* ``verify_fleet`` over 10 origins (100,000 entries each; ``--quick``: 2,000)
  in entries per second vs a bare SELECT + SHA-256 of the same lines; target
  the whole fleet in under 30 s (at full size);
* the atomic increment (``kv_incr``) of one counter by 4 concurrent kernels'
  stores, in increments per second vs unsynchronised read-then-write through
  the same database (which loses updates; the figure checks none were lost).

Run alone with ``python -m benchmarks --only fleet``.
"""

from __future__ import annotations

import itertools
import threading
from hashlib import sha256
from pathlib import Path
from typing import Any

from benchmarks._harness import Context, Figure, guarded, interleaved_rates

SHIP_TARGET = 50_000
VERIFY_SECONDS = 30.0
_names = itertools.count()


def figures(ctx: Context) -> list[Figure]:
    return [
        guarded("fleet ship", lambda: _ship(ctx), target=">= 50,000/s",
                baseline_name="bare COPY"),
        guarded("fleet verify", lambda: _verify(ctx), target="10x100k < 30 s",
                baseline_name="bare SELECT+sha256"),
        guarded("fleet kv_incr, 4 kernels", lambda: _incr(ctx), target="info",
                baseline_name="get+put (loses updates)"),
    ]


def _server(ctx: Context) -> Any:
    if "pg" not in ctx.cache:
        from vak.fleet.devserver import DevServer

        root = ctx.workdir / "pg"
        root.parent.chmod(0o755)
        srv = DevServer.start(root)
        ctx.cache["pg"] = srv
        ctx.cache.setdefault("closers", []).append(srv.stop)
    return ctx.cache["pg"]


def _db(ctx: Context) -> tuple[str, Any]:
    from vak.fleet.store import connect, migrate

    dsn = _server(ctx).create_database(f"bench{next(_names)}")
    conn = connect(dsn)
    migrate(conn)
    ctx.cache.setdefault("closers", []).append(conn.close)
    return dsn, conn


def _log(ctx: Context, name: str, n: int) -> tuple[Path, list[Any]]:
    from benchmarks.bench_audit import fields
    from vak.audit.keys import load_trusted_keys
    from vak.audit.log import AuditLog

    root = ctx.workdir / "fleet" / name
    log = AuditLog.open(root / "vak.log", key_path=root / "log.key",
                        origin=f"bench.vak/{name}", fsync="batched:5")
    for i in range(n):
        log.append("host_decision", fields(i))
    log.close()
    return log.path, load_trusted_keys(log.public_key_path)


def _ship(ctx: Context) -> Figure:
    from vak.fleet.ship import ship_log

    n = 20_000 if ctx.quick else 200_000
    rounds = 2 if ctx.quick else 4
    path, keys = _log(ctx, "ship", n)
    lines = path.read_bytes().splitlines()
    # fresh stores made before timing: creating a database is not shipping
    fresh = [_db(ctx)[1] for _ in range(2 * rounds)]

    def ship() -> int:
        conn = fresh.pop()
        report = ship_log(conn, path, keys)
        if report.size != len(lines):
            raise AssertionError(f"shipped {report.size} of {len(lines)} entries")
        return report.size

    def bare() -> int:
        conn = fresh.pop()
        conn.execute("CREATE TABLE bare (origin text, seq bigint, line text)")
        with conn.cursor().copy("COPY bare FROM STDIN") as copy:
            for i, line in enumerate(lines):
                copy.write_row(("bench.vak/ship", i, line.decode()))
        return len(lines)

    subject, baseline = interleaved_rates(ship, bare, rounds=rounds)
    return Figure("fleet ship", subject, baseline, "bare COPY", ">= 50,000/s",
                  subject.median_ns >= SHIP_TARGET, unit="entries/s",
                  note=f"ship_log of {len(lines):,} entries into an empty store: each line "
                       "checked as a chain, checkpoint roots and signatures verified, one COPY "
                       "(extracted columns, primary key, denials index)")


def _verify(ctx: Context) -> Figure:
    from vak.audit.verify import Code
    from vak.fleet.ship import ship_log
    from vak.fleet.verify import verify_fleet

    per = 2_000 if ctx.quick else 100_000
    _, conn = _db(ctx)
    for k in range(10):
        path, keys = _log(ctx, f"origin{k}", per)
        ship_log(conn, path, keys)
    total = int(conn.execute("SELECT count(*) FROM vak_fleet_entries").fetchone()[0])
    seconds: list[float] = []

    def verify() -> int:
        import time
        t0 = time.perf_counter()
        report = verify_fleet(conn, update_heads=False)
        seconds.append(time.perf_counter() - t0)
        if report.result != Code.OK:
            raise AssertionError(report.render())
        return total

    def bare() -> int:
        with conn.transaction(), conn.cursor(name="bare") as cur:
            cur.itersize = 20_000
            cur.execute("SELECT line FROM vak_fleet_entries ORDER BY origin, seq")
            for (line,) in cur:
                sha256(b"\x00" + line.encode()).digest()
        return total

    subject, baseline = interleaved_rates(verify, bare, rounds=2)
    best = min(seconds)
    scaled = best * (1_000_000 / total)
    return Figure("fleet verify", subject, baseline, "bare SELECT+sha256", "10x100k < 30 s",
                  scaled < VERIFY_SECONDS, unit="entries/s",
                  note=f"verify_fleet over 10 origins x {per:,} entries ({total:,}) in "
                       f"{best:.2f} s; at 10x100k that is about {scaled:.1f} s",
                  extra={"seconds": round(best, 3), "entries": total})


def _incr(ctx: Context) -> Figure:
    from vak.fleet.kvstore import PostgresKV

    dsn, _ = _db(ctx)
    per = 300 if ctx.quick else 3_000
    stores = [PostgresKV(dsn) for _ in range(4)]
    ctx.cache.setdefault("closers", []).extend(s.close for s in stores)
    lost: list[int] = []

    def burst(fn: Any) -> int:
        threads = [threading.Thread(target=fn, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 4 * per

    def atomic(store: Any) -> None:
        for _ in range(per):
            store.incr("bench", "n", 1, ())

    def racy(store: Any) -> None:
        for _ in range(per):
            raw = store.get("bench", "r")
            store.put("bench", "r", str(int(raw or "0") + 1))

    before = [int(stores[0].get("bench", "n") or "0")]

    def subject() -> int:
        ops = burst(atomic)
        now = int(stores[0].get("bench", "n") or "0")
        if now - before[-1] != ops:
            raise AssertionError(f"kv_incr lost {ops - (now - before[-1])} updates")
        before.append(now)
        return ops

    def baseline() -> int:
        start = int(stores[0].get("bench", "r") or "0")
        ops = burst(racy)
        lost.append(ops - (int(stores[0].get("bench", "r") or "0") - start))
        return ops

    s, b = interleaved_rates(subject, baseline, rounds=2 if ctx.quick else 4)
    return Figure("fleet kv_incr, 4 kernels", s, b, "get+put (loses updates)", "info", None,
                  unit="incr/s",
                  note=f"4 stores (one connection each) incrementing one PostgreSQL counter; "
                       f"none lost, while get+put lost {max(lost, default=0)} of {4 * per}")
