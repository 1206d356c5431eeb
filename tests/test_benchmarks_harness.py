"""The benchmark harness: its maths, its table, and that ``--quick`` really runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks._harness import Figure, Sample, guarded, interleaved, interleaved_rates, sample
from benchmarks._report import render_table, to_json

REPO = Path(__file__).resolve().parent.parent


def test_sample_median_and_p99_nearest_rank() -> None:
    s = Sample.of([float(x) for x in range(1, 101)])  # 1..100
    assert s.median_ns == 50.5
    assert s.p99_ns == 100.0  # index int(100 * 0.99) = 99 -> the largest
    assert s.n == 100


def test_sample_single_value_and_empty() -> None:
    assert Sample.of([7.0]) == Sample(7.0, 7.0, 1)
    with pytest.raises(ValueError):
        Sample.of([])


@settings(max_examples=100)
@given(st.lists(st.floats(min_value=0, max_value=1e9), min_size=1, max_size=200))
def test_sample_order_invariants(times: list[float]) -> None:
    s = Sample.of(times)
    assert min(times) <= s.median_ns <= s.p99_ns <= max(times)
    assert Sample.of(list(reversed(times))) == s


def test_ratio_for_times_rates_and_sizes() -> None:
    fast, slow = Sample(100.0, 200.0, 10), Sample(400.0, 800.0, 10)
    assert Figure("t", fast, slow, "b", "", None).ratio == 0.25
    # a rate: half the baseline's throughput costs 2x
    assert Figure("r", fast, Sample(200.0, 200.0, 1), "b", "", None, unit="ops/s").ratio == 2.0
    assert Figure("m", slow, fast, "b", "", None, unit="MiB").ratio == 4.0
    assert Figure("n", fast, None, "", "", None).ratio is None
    assert Figure("z", fast, Sample(0.0, 0.0, 1), "b", "", None).ratio is None


def test_failed_figure_row_and_json() -> None:
    f = Figure.failed("x", "Boom: no", target="<= 1x", baseline_name="bare")
    assert f.ratio is None and f.met is None
    d = f.to_dict()
    assert d["vak"] is None and d["error"] == "Boom: no" and d["target"] == "<= 1x"
    table = render_table([f])
    assert "ERROR" in table and "! x: Boom: no" in table


def test_guarded_turns_exceptions_into_error_rows() -> None:
    def broken() -> Figure:
        raise RuntimeError("part not finished")

    f = guarded("broken", broken, target="t", baseline_name="b")
    assert f.error.startswith("RuntimeError: part not finished")
    assert f.subject is None and f.baseline_name == "b"
    ok = Figure("ok", Sample(1.0, 1.0, 1), None, "", "", None)
    assert guarded("ok", lambda: ok) is ok


def test_interleaved_alternates_and_counts() -> None:
    calls: list[str] = []
    a, b = interleaved(lambda: calls.append("a"), lambda: calls.append("b"),
                       iterations=10, warmup=2)
    assert a.n == b.n == 10
    timed = calls[4:]  # after 2 warm-up rounds of (a, b)
    assert timed[:4] == ["a", "b", "b", "a"]  # who goes first alternates
    assert calls.count("a") == calls.count("b") == 12


def test_interleaved_rates_counts_operations() -> None:
    s, b = interleaved_rates(lambda: 1000, lambda: 10, rounds=4)
    assert s.n == b.n == 4
    assert s.median_ns > b.median_ns > 0


def test_sample_runs_warmup_then_iterations() -> None:
    n = []
    s = sample(lambda: n.append(1), iterations=30, warmup=5)
    assert len(n) == 35 and s.n == 30


def test_table_and_json_shape() -> None:
    figs = [Figure("a", Sample(2000.0, 3000.0, 5), Sample(1000.0, 1500.0, 5), "bare",
                   "< 1x", False, note="why"),
            Figure("v", Sample(2e5, 1e5, 3), Sample(4e5, 3e5, 3), "sha", ">= 1", True,
                   unit="entries/s")]
    table = render_table(figs)
    assert "2.00x" in table and "NO" in table and "yes" in table and "* a: why" in table
    doc = json.loads(json.dumps(to_json(figs, quick=True, elapsed_s=1.0)))
    assert doc["machine"]["cpus"] >= 1
    assert [f["figure"] for f in doc["figures"]] == ["a", "v"]
    assert doc["figures"][1]["ratio"] == 2.0


@pytest.mark.slow
def test_quick_engine_group_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "engine", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    names = [f["figure"] for f in doc["figures"]]
    assert "store+instantiate pooled" in names and "runaway loop: deadline->trap" in names
    for f in doc["figures"]:
        assert f["error"] is None, f
        assert f["vak"]["n"] > 0 and f["baseline"]["median_ns"] > 0
    assert "ratio" in proc.stdout and "[bench]" in proc.stderr


def test_only_a_full_run_writes_the_committed_results() -> None:
    from benchmarks.__main__ import FULL_JSON, QUICK_JSON, _parse, json_path

    assert FULL_JSON == REPO / "benchmarks-results.json"
    assert json_path(_parse([])) == FULL_JSON
    for partial in (["--quick"], ["--only", "engine"], ["--quick", "--only", "audit"]):
        assert json_path(_parse(partial)) == QUICK_JSON != FULL_JSON
    assert json_path(_parse(["--quick", "--json", "x.json"])) == Path("x.json")
    assert QUICK_JSON.parent != REPO


@pytest.mark.slow
def test_quick_run_leaves_the_committed_results_alone() -> None:
    from benchmarks.__main__ import FULL_JSON, QUICK_JSON

    before = FULL_JSON.read_bytes()
    QUICK_JSON.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only", "engine"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert FULL_JSON.read_bytes() == before
    assert json.loads(QUICK_JSON.read_text())["quick"] is True


def test_chart_draws_the_committed_results(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.chart import DEFAULT_RESULTS, main, ratio_target

    out = tmp_path / "chart.png"
    assert main([str(DEFAULT_RESULTS), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and out.stat().st_size > 10_000
    assert (REPO / "docs" / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    assert ratio_target("<= 2.5x") == 2.5 and ratio_target("< 1x") == 1.0
    assert ratio_target("<= 25 us") is None and ratio_target("info") is None


def test_chart_lists_error_rows_and_refuses_an_empty_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.chart import draw

    doc = to_json([Figure("ok", Sample(2.0, 3.0, 1), Sample(1.0, 1.0, 1), "b", "<= 2x", True),
                   Figure.failed("broken", "Boom")], quick=True, elapsed_s=1.0)
    assert draw(doc, tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(ValueError):
        draw({"figures": [Figure.failed("broken", "Boom").to_dict()]}, tmp_path / "d.png")


def test_breakdown_measures_cpu_per_call_and_formats_shares() -> None:
    from benchmarks.breakdown import _rows, cpu_ns

    calls: list[int] = []
    ns = cpu_ns(lambda: calls.append(1), 100, rounds=3)
    assert ns > 0 and len(calls) == 100 + 100 * 3  # warm-up, then three rounds
    rows = _rows("path", 10_000.0, [("part a", 2_500.0), ("part b", 7_500.0)])
    assert rows[0] == "path: 10.0 us CPU per call"
    assert rows[1].split()[-2:] == ["us", "25%"] and "7.5 us" in rows[2]


@pytest.mark.slow
def test_breakdown_runs_on_the_real_hot_paths() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.breakdown", "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for path in ("session-reuse invoke", "fresh-instance invoke", "batched append",
                 "decision-cache hit"):
        assert path in proc.stdout
