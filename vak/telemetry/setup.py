"""Build the observer ``[telemetry]`` describes, or say exactly what is missing.

* ``exporter = "global"``: spans and metrics go to the providers the
  application installed (``opentelemetry.trace.set_tracer_provider``); needs
  only ``opentelemetry-api``;
* ``"console"``: an SDK pipeline printing to stderr (never stdout, where
  ``vak mcp serve`` speaks MCP); needs ``opentelemetry-sdk``;
* ``"otlp"``: an SDK pipeline exporting OTLP over HTTP to ``endpoint``; needs
  ``opentelemetry-exporter-otlp-proto-http`` too.

The pipelines built here belong to the observer: :meth:`OtelObserver.close`
(called by :meth:`vak.Kernel.close`) flushes and shuts them down.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any

from vak.errors import ConfigError
from vak.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    from vak.telemetry.observer import OtelObserver

__all__ = ["observer_from_settings"]

#: module -> the distribution that provides it
_NEEDS = {
    "opentelemetry.trace": "opentelemetry-api",
    "opentelemetry.sdk": "opentelemetry-sdk",
    "opentelemetry.exporter.otlp.proto.http": "opentelemetry-exporter-otlp-proto-http",
}


def _require(module: str, field: str, fix: str) -> None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        raise ConfigError(
            f"setting {field}: needs the Python package {_NEEDS[module]}, which is not "
            "installed", field=field, fix=fix)


def observer_from_settings(settings: TelemetrySettings) -> OtelObserver:
    """An :class:`~vak.telemetry.observer.OtelObserver` for ``settings`` (enabled).

    Raises:
        ConfigError: a package the chosen exporter needs is not installed (the
            message names it and the fix), or ``endpoint`` is not an http(s) URL.
    """
    if settings.endpoint and not settings.endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"setting telemetry.endpoint: expected an http:// or https:// URL, found "
            f"{settings.endpoint[:60]!r}", field="telemetry.endpoint",
            fix='endpoint = "http://127.0.0.1:4318" (the collector\'s OTLP/HTTP port)')
    _require("opentelemetry.trace", "telemetry.enabled", "pip install 'vak[otel]'")
    if settings.exporter != "global":
        _require("opentelemetry.sdk", f"telemetry.exporter = {settings.exporter!r}",
                 "pip install 'vak[otel]'")
    if settings.exporter == "otlp":
        _require("opentelemetry.exporter.otlp.proto.http", "telemetry.exporter = 'otlp'",
                 "pip install opentelemetry-exporter-otlp-proto-http")
    from vak.telemetry.observer import OtelObserver

    if settings.exporter == "global":
        return OtelObserver()
    tracer, meter = _pipeline(settings)
    return OtelObserver(tracer, meter, owned=(tracer, meter))


def _pipeline(settings: TelemetrySettings) -> tuple[Any, Any]:
    """A tracer and a meter provider exporting where ``settings`` says."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": settings.service_name})
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = settings.endpoint.rstrip("/")
        spans: Any = OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None)
        points: Any = OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None)
    else:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        spans = ConsoleSpanExporter(out=sys.stderr)
        points = ConsoleMetricExporter(out=sys.stderr)
    tracer = TracerProvider(resource=resource)
    tracer.add_span_processor(BatchSpanProcessor(spans))
    meter = MeterProvider(resource=resource,
                          metric_readers=[PeriodicExportingMetricReader(points)])
    return tracer, meter
