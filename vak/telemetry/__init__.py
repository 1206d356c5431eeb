"""OpenTelemetry for the kernel: a span per invocation, a child per host call, metrics.

Optional (``pip install 'vak[otel]'``): importing this package loads no
OpenTelemetry module; :mod:`vak.telemetry.observer` does, when a kernel is
built with ``[telemetry] enabled = true`` or ``Kernel(..., observer=...)``.
What is emitted, and what never is (argument values), is in docs/OBSERVABILITY.md.
"""

from __future__ import annotations

__all__: list[str] = []
