"""The ``log`` host function: a skill's diagnostic line, to the Python logger.

Lines go to the logger ``vak.skill.<name>`` at the requested level, with any
secret value revealed to this session scrubbed out first and every control
character escaped (a skill cannot forge a second line or a terminal escape). Like every effect,
the line is written only after its ``host_decision`` is recorded (durably:
the line leaves the kernel). Arguments and replies: docs/HOST-FUNCTIONS.md.
"""

from __future__ import annotations

import logging
from typing import Any

from vak.host.base import EffectScope, NormalCall, excerpt

__all__ = ["LogFamily"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LogFamily:
    """``log``: the scope scrubs the message before it is emitted."""

    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        p = call.params
        # secrets redacted, control characters escaped: one call, one line
        text = excerpt(scope.scrub_text(p["message"]), None)
        logging.getLogger(p["logger"]).log(_LEVELS[p["level"]], "%s", text)
        return {"ok": True}
