"""One rule for every adapter: a failed call is an answer to the model, never a crash.

A :class:`~vak.errors.ToolCallError` (denied, bad input, trapped, output too
deep...) is the model's to see and recover from; its ``to_dict()`` is the
body. Any other exception escaping ``Kernel.invoke`` is a fault of the kernel
or of its environment, already recorded as ``internal_error`` in the call's
``invocation_finished`` entry; the adapter still answers with a tool error
(so the agent framework or MCP session survives) naming only the exception's
type: its message may quote guest-supplied text, which never reaches a
model or a log unscrubbed.
"""

from __future__ import annotations

import logging

from vak.errors import VakError

__all__ = ["failure_body"]

_log = logging.getLogger("vak.adapters")


def failure_body(exc: Exception) -> dict[str, object]:
    """The JSON body an adapter returns to the model for a call that raised ``exc``."""
    if isinstance(exc, VakError):
        return exc.to_dict()
    kind = type(exc).__name__
    _log.error("tool call failed with an unexpected %s (returned as a tool error)", kind)
    return {"error": "internal_error", "message": f"the kernel failed ({kind}); see its log"}
