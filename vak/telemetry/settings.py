"""Settings of the telemetry room: whether the kernel emits OpenTelemetry, and where to.

Pure values (no OpenTelemetry import), so :mod:`vak.config` can compose them
whether or not the ``otel`` extra is installed; the extra is needed only when
``enabled`` is true (:func:`vak.telemetry.setup.observer_from_settings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Exporter", "TelemetrySettings"]

#: where spans and metrics go: the application's global providers, OTLP over HTTP,
#: or stderr (never stdout: ``vak mcp serve`` speaks MCP there)
Exporter = Literal["global", "otlp", "console"]


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """Off by default; ``pip install 'vak[otel]'`` before turning it on."""

    #: emit a span per invocation (a child per host call) and the kernel's metrics
    enabled: bool = False
    #: "global" (the application's providers), "otlp" (also needs the Python package
    #: opentelemetry-exporter-otlp-proto-http) or "console" (stderr); docs/OBSERVABILITY.md
    exporter: Exporter = "global"
    #: the OTLP/HTTP traces+metrics base URL ("" = the exporter's own default)
    endpoint: str = ""
    #: the service.name resource attribute of spans and metrics this kernel makes
    service_name: str = "vak"
