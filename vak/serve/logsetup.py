"""Logging of ``vak serve``: one line per record, text or JSON, at a chosen level.

Every process (front and workers) logs to stderr through Python logging. A
skill's ``log`` host call reaches the logger ``vak.skill.<name>``
(:mod:`vak.host.log`; the line is scrubbed of the session's secrets and its
control characters escaped before it gets here), so ``--log-level debug``
shows a skill's debug lines; JSON records name the skill in ``skill``.
Nothing here ever sees a bearer token: no request header is logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["LEVELS", "configure_logging"]

LEVELS = ("debug", "info", "warning", "error")
_SKILL = "vak.skill."


class _JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process,
            "msg": record.getMessage(),
        }
        if record.name.startswith(_SKILL):
            out["skill"] = record.name[len(_SKILL):]
        if record.exc_info:
            out["exc_type"] = getattr(record.exc_info[0], "__name__", "?")
        return json.dumps(out, ensure_ascii=True)


def configure_logging(fmt: str, level: str, process: str) -> None:
    """Send every record at ``level`` or above to stderr as ``fmt`` (``text``/``json``)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter(process))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # the HTTP stack's own chatter stays at warning unless asked for debug
    for noisy in ("uvicorn", "uvicorn.error", "mcp", "httpx", "sse_starlette"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else
                                          max(logging.WARNING, root.level))
