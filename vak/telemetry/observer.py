"""``OtelObserver``: the kernel's audit facts as OpenTelemetry spans and metrics.

Implements :class:`vak.seams.Observer`. The kernel tells it when an
``invocation_finished`` entry was appended and the mediation tells it of every
``host_decision`` / ``host_resolve`` / ``host_result``; it buffers the host
calls of each running invocation and, when the invocation finishes, emits::

    vak.invoke calculator__execute      (span: skill, export, outcome, seqs, fuel)
    └── vak.host fs_read                (child per host call: decision, policy ids, seqs)

with the real start and end times of each, under whatever span is current in
the calling thread (an MCP request's, say). Metrics: ``vak.invocations``
(counter by tool, skill, outcome), ``vak.invocation.duration`` (histogram, ms),
``vak.fuel`` (counter of fuel used), ``vak.host.calls`` (counter by function
and decision) and ``vak.denials`` (counter by policy id and function).

Invariant: **no argument value is ever exported** -- not a path, URL, key,
secret name, input or output. Only the fields the :class:`~vak.seams.Observer`
protocol names are read, and every string exported is a catalog function name,
a decision effect, a policy id, an error code matching ``[a-z_]{1,48}``, a wire
name or the kernel's own ids. Guest-chosen function names become ``"unknown"``.

Example::

    >>> from opentelemetry.sdk.trace import TracerProvider              # doctest: +SKIP
    >>> kernel = Kernel(config, observer=OtelObserver(TracerProvider()))  # doctest: +SKIP
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

from vak._version import distribution_version
from vak.host.catalog import HOST_FUNCTIONS
from vak.invocation import ToolSpec

__all__ = ["MAX_CALLS_KEPT", "MAX_INVOCATIONS_KEPT", "OtelObserver"]

#: invocations whose host calls are buffered at once (oldest dropped: never unbounded)
MAX_INVOCATIONS_KEPT = 4096
#: host calls kept per invocation (later ones are still counted in the metrics)
MAX_CALLS_KEPT = 512

_FUNCTIONS = frozenset(f.name for f in HOST_FUNCTIONS)
_CODE = re.compile(r"[a-z_]{1,48}")
_EFFECTS = frozenset({"allow", "deny", "approval_required"})


def _code(value: object) -> str:
    """An error code or status as exported: the kernel's vocabulary or ``"other"``."""
    return value if isinstance(value, str) and _CODE.fullmatch(value) else "other"


def _policy_ids(decision: Mapping[str, Any]) -> tuple[str, ...]:
    ids = decision.get("policy_ids")
    if not isinstance(ids, list | tuple):
        return ()
    return tuple(str(p)[:128] for p in ids[:32])


@dataclass(slots=True)
class _HostCall:
    """One host call of a running invocation, as far as the log has recorded it."""

    function: str
    start_ns: int
    end_ns: int | None = None
    effect: str = ""
    policy_ids: tuple[str, ...] = ()
    seq: int | None = None
    resolve_seq: int | None = None
    result_seq: int | None = None
    status: str = ""
    error: str = ""

    def attributes(self) -> dict[str, Any]:
        out: dict[str, Any] = {"vak.host_function": self.function, "vak.decision": self.effect,
                               "vak.policy_ids": list(self.policy_ids)}
        for key, value in (("vak.audit.seq", self.seq),
                           ("vak.audit.resolve_seq", self.resolve_seq),
                           ("vak.audit.result_seq", self.result_seq)):
            if value is not None:
                out[key] = value
        if self.status:
            out["vak.host.status"] = self.status
        if self.error:
            out["vak.host.error"] = self.error
        return out


class OtelObserver:
    """Spans and metrics through the OpenTelemetry API (see the module docstring).

    ``tracer_provider`` / ``meter_provider``: None uses the global ones the
    application configured. ``owned`` lists providers this observer started
    itself (:func:`vak.telemetry.setup.observer_from_settings`); :meth:`close`
    flushes and shuts down only those.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None,
                 meter_provider: metrics.MeterProvider | None = None, *,
                 owned: Sequence[Any] = ()) -> None:
        version = distribution_version()
        tp = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        mp = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self._tracer = tp.get_tracer("vak", version)
        meter = mp.get_meter("vak", version)
        self._invocations = meter.create_counter(
            "vak.invocations", unit="{invocation}", description="tool invocations by outcome")
        self._latency = meter.create_histogram(
            "vak.invocation.duration", unit="ms", description="time a tool invocation ran")
        self._fuel = meter.create_counter(
            "vak.fuel", unit="{fuel}", description="wasm fuel used by tool invocations")
        self._host_calls = meter.create_counter(
            "vak.host.calls", unit="{call}", description="host calls by function and decision")
        self._denials = meter.create_counter(
            "vak.denials", unit="{decision}", description="host calls denied, by policy id")
        self._owned = tuple(owned)
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, list[_HostCall]] = OrderedDict()
        self._closed = False

    # -- vak.seams.Observer ---------------------------------------------------------------
    def host_entry(self, invocation: str, kind: str, fields: Mapping[str, Any], seq: int,
                   /) -> None:
        """Buffer a host call's decision or result until its invocation finishes."""
        now = time.time_ns()
        raw = fields.get("host_function")
        function = raw if isinstance(raw, str) and raw in _FUNCTIONS else "unknown"
        if kind == "host_result":
            outcome = fields.get("outcome")
            outcome = outcome if isinstance(outcome, Mapping) else {}
            with self._lock:
                for call in reversed(self._pending.get(invocation, ())):
                    if call.function == function and call.result_seq is None:
                        call.end_ns, call.result_seq = now, seq
                        call.status = _code(outcome.get("status"))
                        call.error = _code(outcome["error"]) if "error" in outcome else ""
                        break
            return
        decision = fields.get("decision")
        decision = decision if isinstance(decision, Mapping) else {}
        effect = decision.get("effect")
        effect = effect if effect in _EFFECTS else "other"
        ids = _policy_ids(decision)
        with self._lock:
            calls = self._open(invocation)
            last = calls[-1] if calls else None
            if (kind == "host_decision" and last is not None and last.function == function
                    and last.resolve_seq is not None and last.seq is None):
                call = last  # the address decision of an http call already decided by URL
            elif len(calls) < MAX_CALLS_KEPT:
                call = _HostCall(function, now)
                calls.append(call)
            else:
                call = _HostCall(function, now)  # counted below, not kept
            call.effect, call.policy_ids = effect, ids
            if kind == "host_resolve":
                call.resolve_seq = seq
            else:
                call.seq, call.end_ns = seq, now
        if kind != "host_resolve":
            attrs = {"vak.host_function": function, "vak.decision": effect}
            self._host_calls.add(1, attrs)
            if effect == "deny":
                for policy_id in ids or ("none",):
                    self._denials.add(1, {"vak.policy_id": policy_id,
                                          "vak.host_function": function})

    def invocation_finished(self, invocation: str, spec: ToolSpec, outcome: Mapping[str, Any],
                            started_seq: int, finished_seq: int, fuel: int | None,
                            duration_ns: int, /) -> None:
        """Emit the invocation's span with its host calls as children, and its metrics."""
        end = time.time_ns()
        with self._lock:
            calls = self._pending.pop(invocation, [])
        status = _code(outcome.get("status"))
        start = min([end - max(0, duration_ns), *(c.start_ns for c in calls)])
        attrs: dict[str, Any] = {
            "vak.tool": spec.name, "vak.skill": spec.skill, "vak.export": spec.export,
            "vak.skill.version": spec.skill_version, "vak.invocation.id": invocation,
            "vak.outcome": status, "vak.audit.started_seq": started_seq,
            "vak.audit.finished_seq": finished_seq, "vak.host_calls": len(calls),
        }
        if fuel is not None:
            attrs["vak.fuel"] = fuel
        error = _code(outcome["error"]) if "error" in outcome else ""
        if error:
            attrs["vak.error"] = error
        span = self._tracer.start_span(f"vak.invoke {spec.name}", start_time=start,
                                       attributes=attrs)
        if status != "ok":
            span.set_status(Status(StatusCode.ERROR, error or status))
        parent = trace.set_span_in_context(span)
        for call in calls:
            child = self._tracer.start_span(f"vak.host {call.function}", context=parent,
                                            start_time=call.start_ns,
                                            attributes=call.attributes())
            if call.effect == "deny" or call.status == "error":
                child.set_status(Status(StatusCode.ERROR, call.error or call.effect))
            child.end(end_time=max(call.start_ns, call.end_ns or call.start_ns))
        span.end(end_time=end)
        labels = {"vak.tool": spec.name, "vak.skill": spec.skill, "vak.outcome": status}
        self._invocations.add(1, labels)
        self._latency.record(duration_ns / 1e6, labels)
        if fuel:
            self._fuel.add(fuel, {"vak.tool": spec.name, "vak.skill": spec.skill})

    def close(self) -> None:
        """Flush and shut down the providers this observer started (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for provider in self._owned:
            provider.shutdown()

    # -- internals ------------------------------------------------------------------------
    def _open(self, invocation: str) -> list[_HostCall]:
        """The buffer of ``invocation`` (caller holds the lock); bounded, oldest dropped."""
        calls = self._pending.get(invocation)
        if calls is None:
            calls = self._pending[invocation] = []
            if len(self._pending) > MAX_INVOCATIONS_KEPT:
                self._pending.popitem(last=False)
        return calls
