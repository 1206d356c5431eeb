"""OpenTelemetry through the real kernel (issue 16, item 5): spans, metrics, no argument values.

The SDK's ``InMemorySpanExporter`` and ``InMemoryMetricReader`` collect what an
``OtelObserver`` emits while real skills run (real wasmtime, real Cedar, the
real audit log); every figure is checked against the log itself. The OTLP
path exports to a real HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from kernel_helpers import DemoState
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from vak.config import KernelConfig
from vak.errors import ConfigError, InputValidationError, PolicyDeniedError
from vak.kernel import Kernel
from vak.telemetry.observer import OtelObserver
from vak.telemetry.settings import TelemetrySettings

ADD = {"operation": "add", "a": 2, "b": 3}


@pytest.fixture
def state(private_state: DemoState) -> DemoState:
    return private_state


class Otel:
    """An in-memory SDK pipeline and the kernel observing into it."""

    def __init__(self, state: DemoState) -> None:
        self.spans = InMemorySpanExporter()
        tracer = TracerProvider()
        tracer.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.state = state
        self.kernel = Kernel(KernelConfig.from_toml(state.config), observer=OtelObserver(
            tracer, MeterProvider(metric_readers=[self.reader])))

    def finished(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.spans.get_finished_spans())

    def invocation(self, seq: int) -> ReadableSpan:
        (span,) = [s for s in self.finished() if s.name.startswith("vak.invoke")
                   and s.attributes is not None and s.attributes["vak.audit.finished_seq"] == seq]
        return span

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.parent is not None
                and s.parent.span_id == parent.context.span_id]

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.setdefault(m.name, []).extend(m.data.data_points)
        return out

    def entries(self) -> dict[int, dict[str, Any]]:
        return {e["seq"]: e for e in map(json.loads, self.state.log.read_bytes().splitlines())}


@pytest.fixture
def otel(state: DemoState) -> Iterator[Otel]:
    o = Otel(state)
    with o.kernel:
        yield o


def test_a_span_per_invocation_with_its_audit_evidence(otel: Otel) -> None:
    inv = otel.kernel.invoke("calculator__execute", ADD)
    span = otel.invocation(inv.audit_seq_finished)
    attrs = dict(span.attributes or {})
    assert span.name == "vak.invoke calculator__execute"
    assert attrs["vak.skill"] == "calculator" and attrs["vak.export"] == "execute"
    assert attrs["vak.outcome"] == "ok" and attrs["vak.invocation.id"] == inv.invocation_id
    assert attrs["vak.audit.started_seq"] == inv.audit_seq_started
    assert attrs["vak.fuel"] == inv.fuel_used > 0
    assert attrs["vak.host_calls"] == 0 and otel.children(span) == []
    assert span.status.status_code is not StatusCode.ERROR
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time >= inv.duration_ns


def test_a_child_span_per_host_call_with_decision_policy_and_seqs(otel: Otel) -> None:
    (otel.state.workdir / "workspace" / "hello.txt").write_text("hi")
    inv = otel.kernel.invoke("notes__read", {"path": "/workspace/hello.txt"})
    span = otel.invocation(inv.audit_seq_finished)
    (child,) = otel.children(span)
    attrs = dict(child.attributes or {})
    assert child.name == "vak.host fs_read"
    assert attrs["vak.decision"] == "allow" and attrs["vak.policy_ids"]
    decision = otel.entries()[attrs["vak.audit.seq"]]
    assert decision["kind"] == "host_decision" and decision["invocation"] == inv.invocation_id
    assert list(attrs["vak.policy_ids"]) == decision["decision"]["policy_ids"]
    result = otel.entries()[attrs["vak.audit.result_seq"]]
    assert result["kind"] == "host_result" and result["decision_seq"] == attrs["vak.audit.seq"]
    assert attrs["vak.host.status"] == "ok"
    assert span.start_time is not None and child.start_time is not None
    assert span.start_time <= child.start_time <= (child.end_time or 0) <= (span.end_time or 0)


def test_denials_are_error_spans_and_counted_by_policy(otel: Otel) -> None:
    with pytest.raises(PolicyDeniedError) as info:
        otel.kernel.invoke("notes__read", {"path": "/etc/passwd"})
    span = otel.invocation(info.value.details["finished_seq"])
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["vak.outcome"] == "denied"
    (child,) = otel.children(span)
    attrs = dict(child.attributes or {})
    assert attrs["vak.decision"] == "deny" and child.status.status_code is StatusCode.ERROR
    assert attrs["vak.audit.seq"] == info.value.details["audit_seq"]
    policy = info.value.details["policy_ids"][0]
    denials = otel.metrics()["vak.denials"]
    assert [p.value for p in denials if p.attributes["vak.policy_id"] == policy] == [1]


def test_http_call_is_one_child_span(otel: Otel) -> None:
    inv = otel.kernel.invoke("fetch__fetch", {"url": f"http://127.0.0.1:{otel.state.port}/"})
    (child,) = otel.children(otel.invocation(inv.audit_seq_finished))
    attrs = dict(child.attributes or {})
    assert child.name == "vak.host http_request" and attrs["vak.decision"] == "allow"
    entries = otel.entries()
    assert entries[attrs["vak.audit.seq"]]["kind"] == "host_decision"
    assert entries[attrs["vak.audit.result_seq"]]["kind"] == "host_result"


def test_url_and_address_decisions_of_one_call_are_one_child() -> None:
    """``host_resolve`` (the URL decision) then ``host_decision`` (the address) then the result."""
    from vak.invocation import ToolSpec

    spans = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    obs = OtelObserver(tracer, MeterProvider())
    allow = {"effect": "allow", "policy_ids": ["p.http"]}
    obs.host_entry("i", "host_resolve", {"host_function": "http_request", "decision": allow}, 3)
    obs.host_entry("i", "host_decision", {"host_function": "http_request", "decision": allow}, 4)
    obs.host_entry("i", "host_result", {"host_function": "http_request",
                                        "outcome": {"status": "ok"}}, 5)
    obs.host_entry("i", "host_decision", {"host_function": "log", "decision": allow}, 6)
    obs.invocation_finished("i", ToolSpec("s__e", "s", "e", "", {}, {}), {"status": "ok"},
                            2, 7, 1, 1000)
    http_span, log_span = sorted((s for s in spans.get_finished_spans()
                                  if s.name.startswith("vak.host")), key=lambda s: s.name)
    attrs = dict(http_span.attributes or {})
    assert (attrs["vak.audit.resolve_seq"], attrs["vak.audit.seq"],
            attrs["vak.audit.result_seq"]) == (3, 4, 5)
    assert dict(log_span.attributes or {})["vak.audit.seq"] == 6


def test_metrics_count_invocations_latency_and_fuel(otel: Otel) -> None:
    invs = [otel.kernel.invoke("calculator__execute", ADD) for _ in range(3)]
    with pytest.raises(PolicyDeniedError):
        otel.kernel.invoke("notes__read", {"path": "/etc/passwd"})
    m = otel.metrics()
    counts = {(p.attributes["vak.tool"], p.attributes["vak.outcome"]): p.value
              for p in m["vak.invocations"]}
    assert counts == {("calculator__execute", "ok"): 3, ("notes__read", "denied"): 1}
    (calc,) = [p for p in m["vak.invocation.duration"]
               if p.attributes["vak.tool"] == "calculator__execute"]
    assert calc.count == 3 and calc.sum > 0
    (fuel,) = [p for p in m["vak.fuel"] if p.attributes["vak.tool"] == "calculator__execute"]
    assert fuel.value == sum(i.fuel_used for i in invs)
    calls = {(p.attributes["vak.host_function"], p.attributes["vak.decision"]): p.value
             for p in m["vak.host.calls"]}
    assert calls == {("fs_read", "deny"): 1}


MARKERS = ("mkPATHx7f3a", "mkBODYx91b2", "mkURLxc0de", "mkDENYx55aa", "mkINPUTx0e1f")


def test_no_argument_value_reaches_a_span_or_a_metric(otel: Otel) -> None:
    """Paths, URLs, contents and inputs given to tools appear in no exported telemetry."""
    k, port = otel.kernel, otel.state.port
    (otel.state.workdir / "workspace" / f"{MARKERS[0]}.txt").write_text("x")
    k.invoke("notes__read", {"path": f"/workspace/{MARKERS[0]}.txt"})
    k.invoke("notes__write", {"path": f"/workspace/{MARKERS[0]}.out", "content": MARKERS[1]})
    k.invoke("fetch__fetch", {"url": f"http://127.0.0.1:{port}/{MARKERS[2]}"})
    for bad in ({"path": f"/etc/{MARKERS[3]}"}, {"path": f"/workspace/../{MARKERS[3]}"}):
        with pytest.raises(PolicyDeniedError):
            k.invoke("notes__read", bad)
    with pytest.raises(InputValidationError):
        k.invoke("calculator__execute", {"operation": MARKERS[4], "a": 1, "b": 2})
    spans = otel.finished()
    assert len(spans) >= 10  # six invocations and their host calls were really exported
    exported = "\n".join(s.to_json() for s in spans)
    data = otel.reader.get_metrics_data()
    assert data is not None
    exported += data.to_json()
    for marker in MARKERS:
        assert marker not in exported
    # and the markers are really in the log: the test would see them if they leaked
    log = otel.state.log.read_text()
    assert MARKERS[0] in log and MARKERS[2] in log


def test_unknown_host_function_names_are_not_exported() -> None:
    from vak.invocation import ToolSpec

    spans = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    obs = OtelObserver(tracer, MeterProvider())
    obs.host_entry("i1", "host_decision", {"host_function": "evil\x1b/etc/shadow",
                                           "decision": {"effect": "deny",
                                                        "policy_ids": ["vak.invalid-args"]}}, 7)
    obs.invocation_finished("i1", ToolSpec("s__e", "s", "e", "", {}, {}),
                            {"status": "trap", "error": "Guest said /etc/shadow"}, 6, 8, 10, 1000)
    (child, parent) = spans.get_finished_spans()
    assert child.name == "vak.host unknown"
    assert dict(parent.attributes or {})["vak.error"] == "other"
    assert "shadow" not in child.to_json() + parent.to_json()


def test_buffers_are_bounded() -> None:
    from vak.telemetry import observer as mod

    obs = OtelObserver(TracerProvider(), MeterProvider())
    for i in range(mod.MAX_INVOCATIONS_KEPT + 10):
        obs.host_entry(f"i{i}", "host_decision", {"host_function": "log"}, i)
    for _ in range(mod.MAX_CALLS_KEPT + 10):
        obs.host_entry("one", "host_decision", {"host_function": "log"}, 1)
    assert len(obs._pending) <= mod.MAX_INVOCATIONS_KEPT
    assert len(obs._pending["one"]) == mod.MAX_CALLS_KEPT


# ---------------------------------------------------------------------- configuration
def test_disabled_by_default_costs_nothing(state: DemoState) -> None:
    with Kernel(KernelConfig.from_toml(state.config)) as kernel:
        assert kernel._observer is None
        assert kernel._mediator.observer is None  # type: ignore[attr-defined]


def test_telemetry_table_of_vak_toml(state: DemoState) -> None:
    text = state.config.read_text()
    state.config.write_text(text + '\n[telemetry]\nenabled = true\nexporter = "console"\n')
    cfg = KernelConfig.from_toml(state.config)
    assert cfg.telemetry == TelemetrySettings(enabled=True, exporter="console")
    state.config.write_text(text + '\n[telemetry]\nexporter = "jaeger"\n')
    with pytest.raises(ConfigError, match=r"telemetry\.exporter"):
        KernelConfig.from_toml(state.config)


def test_console_exporter_writes_spans_to_stderr(state: DemoState,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    cfg = KernelConfig.from_toml(state.config).with_(
        telemetry=TelemetrySettings(enabled=True, exporter="console"))
    with Kernel(cfg) as kernel:
        kernel.invoke("calculator__execute", ADD)
    out, err = capfd.readouterr()
    assert "vak.invoke calculator__execute" in err and "vak.invoke" not in out


class _Receiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint on loopback: records each POST's path and body."""

    got: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.got.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_otlp_exporter_sends_to_the_endpoint(state: DemoState) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.got = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = KernelConfig.from_toml(state.config).with_(
            telemetry=TelemetrySettings(enabled=True, exporter="otlp", endpoint=endpoint,
                                        service_name="vak-test"))
        with Kernel(cfg) as kernel:
            kernel.invoke("calculator__execute", ADD)
        # close() flushed both pipelines
    finally:
        server.shutdown()
    paths = {p for p, _ in _Receiver.got}
    assert {"/v1/traces", "/v1/metrics"} <= paths
    traces = b"".join(b for p, b in _Receiver.got if p == "/v1/traces")
    assert b"vak.invoke calculator__execute" in traces and b"vak-test" in traces


def test_bad_endpoint_is_a_config_error(state: DemoState) -> None:
    cfg = KernelConfig.from_toml(state.config).with_(
        telemetry=TelemetrySettings(enabled=True, exporter="otlp", endpoint="file:///etc"))
    with pytest.raises(ConfigError, match=r"telemetry\.endpoint"):
        Kernel(cfg)


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(sys.argv[1]):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Block())
from vak.errors import ConfigError
from vak.telemetry.setup import observer_from_settings
from vak.telemetry.settings import TelemetrySettings
try:
    observer_from_settings(TelemetrySettings(enabled=True, exporter=sys.argv[2]))
except ConfigError as exc:
    print(exc.message); print(exc.details.get("fix"))
"""


@pytest.mark.parametrize(("blocked", "exporter", "named"), [
    ("opentelemetry.exporter", "otlp", "opentelemetry-exporter-otlp-proto-http"),
    ("opentelemetry.sdk", "console", "opentelemetry-sdk"),
    ("opentelemetry", "global", "opentelemetry-api"),
], ids=["otlp-missing", "sdk-missing", "api-missing"])
def test_a_missing_package_is_a_clear_error(blocked: str, exporter: str, named: str) -> None:
    out = subprocess.run([sys.executable, "-c", BLOCK, blocked, exporter], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert named in out and "not installed" in out and "pip install" in out


def test_global_providers_need_only_the_api(state: DemoState) -> None:
    cfg = KernelConfig.from_toml(state.config).with_(
        telemetry=TelemetrySettings(enabled=True))
    with Kernel(cfg) as kernel:  # the no-op global providers: calls still work
        assert kernel.invoke("calculator__execute", ADD).output == {"result": 5}
        assert isinstance(kernel._observer, OtelObserver)
