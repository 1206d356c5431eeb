"""The auditor's toolkit: decision replay rate and the HTML report of a large log.

* ``replay``: ``vak-audit replay``'s work (:func:`vak.review.replay.replay`: read
  the log file, evaluate, compare; split across one process per CPU as the
  command does, :mod:`vak.review.parallel`) over a *realistic* log of N decisions vs the
  kernel's own ``PolicyEngine`` deciding the same requests one by one with its
  cache off; target at least 20,000 decisions per second. The log mixes the
  host functions an agent session uses (file reads and writes over a few
  thousand paths with popular ones, log lines of many sizes, HTTP to a few
  hundred URLs, kv keys, clock, random), so about a third of its requests are
  distinct: replay evaluates each distinct request once (Cedar is
  deterministic), and the figure says how many there were;
* ``replay, all distinct``: the same over a log whose every request differs
  (each a new file path): the floor, where every decision costs a Cedar
  evaluation and an entity set of its own (reported, no target);
* ``report``: ``render_report`` of a 100,000-entry log plus the time until a real
  headless Chromium has drawn it (``body[data-ready]``), vs a bare orjson parse
  of the same log; target under 10 s in all. Needs Debian's ``chromium`` and the
  ``playwright`` package (dev extra); without them the row says so.

The logs are synthesised from one real kernel run: the policy set and the
skill's principal (given every capability the mix uses) come from it, and
every recorded decision is the one the kernel's ``PolicyEngine`` makes for its
request, so a correct replay finds no difference (checked).
"""

from __future__ import annotations

import copy
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks._fixtures import kernel_config, signed_skill
from benchmarks._harness import Context, Figure, Sample, guarded, interleaved_rates

REPLAY_TARGET = 20_000
REPORT_TARGET_S = 10.0
_DUMP = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def figures(ctx: Context) -> list[Figure]:
    return [
        guarded("replay decisions", lambda: _replay(ctx, distinct=False),
                target=">= 20,000/s", baseline_name="PolicyEngine.decide, uncached"),
        guarded("replay, all distinct", lambda: _replay(ctx, distinct=True),
                baseline_name="PolicyEngine.decide, uncached"),
        guarded("report, 100k entries", lambda: _report(ctx), target="< 10 s",
                baseline_name="orjson parse of the log"),
    ]


def _seed(ctx: Context) -> list[dict[str, Any]]:
    """Entries of one real kernel run: policy set, skill_loaded, an allowed fs_read."""
    if "review-seed" not in ctx.cache:
        from vak.kernel import Kernel

        data = ctx.workdir / "review-data"
        data.mkdir(exist_ok=True)
        (data / "hello.txt").write_text("hello")
        cfg = kernel_config(ctx, "review", fs_mounts={"/workspace": data},
                            skill_dirs=(signed_skill(ctx, "notes"),))
        with Kernel(cfg) as k:
            k.invoke("notes__read", {"path": "/workspace/hello.txt"}, session="bench")
            log = cfg.resolved("audit_log")
        ctx.cache["review-seed"] = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    seed: list[dict[str, Any]] = ctx.cache["review-seed"]
    return seed


def _framed(seed: list[dict[str, Any]], head: list[dict[str, Any]], n: int, per_inv: int,
            session_of: Callable[[int], str],
            decision_at: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """``head`` then ``n`` decisions, ``per_inv`` to an invocation, each allowed one
    followed by its ``host_result`` as the kernel writes it (started, finished and
    result entries copied from the seed run), numbered by seq."""
    started = next(e for e in seed if e["kind"] == "invocation_started")
    finished = next(e for e in seed if e["kind"] == "invocation_finished")
    result = next(e for e in seed if e["kind"] == "host_result")
    out = list(head)
    for i in range(n):
        inv, session = f"inv-{i // per_inv}", session_of(i)
        if i % per_inv == 0:
            out.append({**started, "invocation": inv, "session": session})
        decision = {**decision_at(i), "invocation": inv, "session": session}
        out.append(decision)
        if decision["decision"]["effect"] == "allow":
            out.append({**result, "invocation": inv, "host_function": decision["host_function"],
                        "resource": decision["resource"], "decision_seq": len(out) - 1})
        if i % per_inv == per_inv - 1:
            out.append({**finished, "invocation": inv})
    for seq, e in enumerate(out):
        e["seq"] = seq
    return out


def _synth(ctx: Context, n_decisions: int) -> list[dict[str, Any]]:
    """A log of ``n_decisions`` fs_read decisions, each on a new path (all distinct)."""
    seed = _seed(ctx)
    head = [copy.deepcopy(e) for e in seed if e["kind"] in ("policy_set", "skill_loaded")]
    template = next(e for e in seed if e["kind"] == "host_decision" and "request" in e)

    def decision(i: int) -> dict[str, Any]:
        path = f"/workspace/d{i % 97}/f{i}.txt"
        d = copy.deepcopy(template)
        d["resource"] = path
        res = d["request"]["resource"]
        res["uid"]["id"] = res["attrs"]["path"] = path
        res["parents"] = [{"type": "Vak::Dir", "id": p}
                          for p in ("/", "/workspace", f"/workspace/d{i % 97}", path)]
        return d

    return _framed(seed, head, n_decisions, 4, lambda i: f"s{i % 50}", decision)


def _zipf(rng: random.Random, n: int) -> int:
    """An index in [0, n) where low indexes are popular (a few files are read often)."""
    return min(n - 1, int(rng.paretovariate(1.2)) - 1)


def _mixed_call(rng: random.Random, skill: str) -> tuple[str, Any, dict[str, Any], str]:
    """(action, resource entity, context without session, summary resource) of one call."""
    from vak.policy.entities import Entity, file_entity, kernel_entity

    roll = rng.random()
    if roll < 0.35:
        path = f"/workspace/docs/d{_zipf(rng, 3000) % 40}/f{_zipf(rng, 3000)}.md"
        return "fs_read", file_entity(path), {"max_bytes": rng.choice((1 << 20, 65536))}, path
    if roll < 0.45:
        path = f"/workspace/out/r{_zipf(rng, 800)}.json"
        return ("fs_write", file_entity(path),
                {"size": rng.randint(1, 40_000), "append": rng.random() < 0.2}, path)
    if roll < 0.70:
        return ("log", kernel_entity(), {"level": rng.choice(("debug", "info", "warn", "error")),
                                         "size": rng.randint(1, 400)}, "")
    if roll < 0.80:
        k = _zipf(rng, 300)
        url = f"https://api.example.com/v1/items/{k}"
        res = Entity("Vak::Url", url, {"scheme": "https", "host": "api.example.com", "port": 443,
                                       "path": f"/v1/items/{k}", "ip": "93.184.216.34",
                                       "ip_class": "public"})
        return ("http_request", res, {"method": rng.choice(("GET", "GET", "POST")),
                                      "header_names": ["accept"], "body_size": 0,
                                      "timeout_ms": 5000}, url)
    if roll < 0.90:
        key = f"item-{_zipf(rng, 2000)}"
        res = Entity("Vak::KvKey", f"{skill}/{key}", {"namespace": skill, "key": key},
                     (("Vak::KvNamespace", skill),))
        return "kv_get", res, {}, key
    if roll < 0.95:
        return "clock_now", kernel_entity(), {}, ""
    return "random_bytes", kernel_entity(), {"n": rng.choice((16, 32, 64))}, ""


def _realistic(ctx: Context, n_decisions: int) -> list[dict[str, Any]]:
    """A log of ``n_decisions`` decisions of a mixed agent workload (see the docstring)."""
    from vak.policy.engine import NO_SESSION, PolicyEngine
    from vak.policy.entities import CedarRequest, Entity, Principal, request_record
    from vak.policy.loader import loaded_from_record

    seed = _seed(ctx)
    policy = copy.deepcopy(next(e for e in seed if e["kind"] == "policy_set"))
    loaded = next(e for e in seed if e["kind"] == "skill_loaded")
    pe = loaded["principal"]["entity"]
    attrs = {**pe["attrs"], "log": True, "clock": True, "random": True, "kv": True,
             "http_hosts": ["api.example.com"]}
    principal = Principal.of(Entity(pe["uid"]["type"], pe["uid"]["id"], attrs))
    skill_loaded = copy.deepcopy(loaded)
    skill_loaded["principal"] = {"fingerprint": principal.fingerprint,
                                 "entity": principal.entity.to_json()}
    engine = PolicyEngine(loaded_from_record(policy), cache_size=1 << 20)
    template = next(e for e in seed if e["kind"] == "host_decision" and "request" in e)
    rng = random.Random(18)
    skill = pe["uid"]["id"]

    def decision(i: int) -> dict[str, Any]:
        action, resource, context, shown = _mixed_call(rng, skill)
        # context.caller: the schema requires it (docs/POLICY.md, "The caller")
        context = {"session": NO_SESSION, "caller": {"id": "anonymous", "kind": "agent"},
                   **context}
        decided = engine.decide(CedarRequest(principal, action, resource, context))
        return {**template, "host_function": action, "resource": shown,
                "decision": {"effect": "allow" if decided.allowed else "deny",
                             "policy_ids": list(decided.policy_ids),
                             "policy_set": policy["policy_set"]},
                "request": request_record(principal, action, resource, context)}

    return _framed(seed, [policy, skill_loaded], n_decisions, 8,
                   lambda i: f"s{(i // 64) % 40}", decision)


def _replay(ctx: Context, *, distinct: bool) -> Figure:
    from vak.policy.engine import PolicyEngine
    from vak.policy.entities import CedarRequest, Entity, Principal
    from vak.policy.loader import loaded_from_record
    from vak.review.replay import replay

    n = 5_000 if ctx.quick else 50_000
    entries = _synth(ctx, n) if distinct else _realistic(ctx, n)
    path = ctx.workdir / f"review-replay-{'distinct' if distinct else 'mixed'}.log"
    path.write_bytes(b"".join(orjson.dumps(e, option=_DUMP) for e in entries))
    policy = next(e for e in entries if e["kind"] == "policy_set")
    engine = PolicyEngine(loaded_from_record(policy), cache_size=0)
    p = next(e for e in entries if e["kind"] == "skill_loaded")["principal"]
    pe = p["entity"]
    principal = Principal(Entity(pe["uid"]["type"], pe["uid"]["id"], pe["attrs"]), p["fingerprint"])
    requests = []
    for e in entries:
        if e["kind"] == "host_decision":
            r = e["request"]["resource"]
            resource = Entity(r["uid"]["type"], r["uid"]["id"], r["attrs"],
                              tuple((q["type"], q["id"]) for q in r["parents"]))
            requests.append(CedarRequest(principal, e["request"]["action"], resource,
                                         e["request"]["context"]))
    results: list[Any] = []

    def subject() -> int:
        results.append(replay(path))
        return n

    def baseline() -> int:
        for req in requests:
            engine.decide(req)
        return n

    a, b = interleaved_rates(subject, baseline, rounds=2 if ctx.quick else 4)
    last = results[-1]
    if last.differences or last.unreplayable or last.evaluated != n:
        raise AssertionError(f"replay of the synthetic log is wrong: {last.to_json()}")
    share = f"{last.distinct_requests:,} distinct requests ({last.distinct_requests / n:.0%})"
    cpu = (f"; {_cpu_rate(subject):,.0f} decisions per CPU-second (less sensitive to a "
           "shared machine's load than the wall-clock rate)")
    if distinct:
        return Figure("replay, all distinct", a, b, "PolicyEngine.decide, uncached", "", None,
                      unit="decisions/s",
                      note=f"{n:,} fs_read decisions on {n:,} paths, {share}: the floor; "
                           f"log file read and parsed included, {_jobs()}{cpu}")
    return Figure("replay decisions", a, b, "PolicyEngine.decide, uncached", ">= 20,000/s",
                  a.median_ns >= REPLAY_TARGET, unit="decisions/s",
                  note=f"{n:,} decisions of a mixed workload, {share}, each evaluated once; "
                       f"log file read and parsed included, {_jobs()}; the baseline is the "
                       f"kernel's engine with its cache off{cpu}")


def _cpu_rate(run: Callable[[], int]) -> float:
    """Operations per CPU-second of one ``run``, its worker processes included."""
    import resource

    def cpu() -> float:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    t0 = cpu()
    ops = run()
    return ops / max(1e-9, cpu() - t0)


def _jobs() -> str:
    import os

    from vak.review.parallel import MIN_SPLIT_BYTES

    n = os.cpu_count() or 1
    return (f"{n} worker processes for logs over {MIN_SPLIT_BYTES >> 20} MiB" if n > 1
            else "one process")


def _report(ctx: Context) -> Figure:
    from vak.review.logread import LogEntries, gc_paused
    from vak.review.report import render_report

    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    n_entries = 10_000 if ctx.quick else 100_000
    entries = _synth(ctx, int(n_entries / 1.5))[:n_entries]
    path = ctx.workdir / "review-report.log"
    path.write_bytes(b"".join(orjson.dumps(e, option=_DUMP) for e in entries))
    html_path = ctx.workdir / "review-report.html"
    verification = {"result": "OK", "summary": "benchmark log", "findings": []}
    times: list[float] = []
    bare: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium,
                                     args=["--no-sandbox", "--disable-gpu",
                                           "--disable-background-networking"])
        try:
            for _ in range(1 if ctx.quick else 3):
                t0 = time.perf_counter_ns()
                with gc_paused():  # as read_entries parses: a fair baseline
                    parsed = [orjson.loads(x) for x in path.read_bytes().splitlines()]
                bare.append(time.perf_counter_ns() - t0)
                t0 = time.perf_counter_ns()
                html_path.write_text(render_report(LogEntries(parsed), verification))
                page = browser.new_page()
                page.goto(Path(html_path).as_uri())
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                times.append(time.perf_counter_ns() - t0)
                page.close()
        finally:
            browser.close()
    subject, baseline = Sample.of(times), Sample.of(bare)
    return Figure("report, 100k entries", subject, baseline, "orjson parse of the log",
                  "< 10 s", subject.median_ns < REPORT_TARGET_S * 1e9,
                  note=f"{len(entries):,} entries: render_report + Chromium load until drawn "
                       f"({subject.median_ns / 1e9:.2f} s)")
