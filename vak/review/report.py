"""One self-contained HTML file showing a log as a timeline an auditor can read.

The page carries its data as JSON inside a ``<script type="application/json">``
element (escaped so no log text can close the element) and draws everything
with a small inline script through ``textContent``: no network, no CDN, no
markup from the log. A Content-Security-Policy meta tag forbids any fetch.

Example::

    >>> html = render_report(read_entries(Path("audit/vak.log")),
    ...                      {"result": "OK", "summary": "24/24 entries", "findings": []})
    ...                                                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson

from vak.review.logread import LogEntries
from vak.review.timeline import build_timeline

__all__ = ["render_report"]

_PLACEHOLDER = "__VAK_DATA__"
#: the characters that could end the data element or confuse an HTML parser
_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                          "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _template() -> str:
    return resources.files("vak.review").joinpath("report.html").read_text(encoding="utf-8")


def _embed(data: Mapping[str, Any]) -> str:
    return orjson.dumps(data).decode().translate(_ESCAPES)


def render_report(entries: LogEntries, verification: Mapping[str, Any]) -> str:
    """The report page for ``entries`` with ``verification`` shown at the top.

    ``verification`` holds ``result`` (the verifier's result name, e.g. ``OK``),
    ``summary`` (one line) and ``findings`` (lines, possibly empty).
    """
    findings: Sequence[Any] = verification.get("findings") or ()
    data = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "verify": {
            "result": str(verification.get("result", "UNKNOWN")),
            "summary": str(verification.get("summary", "")),
            "findings": [str(f) for f in findings][:200],
        },
        "timeline": build_timeline(entries, entries.unreadable).to_json(),
    }
    page = _template()
    head, _, tail = page.partition(_PLACEHOLDER)
    return head + _embed(data) + tail
