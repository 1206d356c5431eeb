"""The ``log`` host function: a skill's diagnostic line, to the Python logger.

Lines go to the logger ``vak.skill.<name>`` at the requested level, with any
secret value handed to this invocation scrubbed out first.

Arguments (JSON): ``{"message", "level"?: debug|info|warning|error}`` -> ``{"ok"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from vak.host.base import Prepared, arg_str
from vak.host.context import CallContext
from vak.policy.entities import kernel_entity
from vak.policy.normalize import NormalizeError

__all__ = ["LogFamily"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
MAX_MESSAGE = 8192


class LogFamily:
    """``log``; ``scrub`` removes secrets from the message before it is emitted."""

    def prepare(
        self,
        function: str,
        args: Mapping[str, Any],
        ctx: CallContext,
        scrub: Callable[[str], str] | None = None,
    ) -> Prepared:
        message = arg_str(args, "message", max_len=MAX_MESSAGE)
        level = arg_str(args, "level", default="info", max_len=16)
        if level not in _LEVELS:
            raise NormalizeError(f"log level must be one of {sorted(_LEVELS)}")
        ceiling = None if ctx.manifest.capabilities.log else "the skill did not declare log"
        name = ctx.manifest.name

        def effect() -> dict[str, Any]:
            text = scrub(message) if scrub is not None else message
            logging.getLogger(f"vak.skill.{name}").log(_LEVELS[level], "%s", text)
            return {"ok": True}

        return Prepared(
            kernel_entity(),
            {"level": level, "size": len(message)},
            ceiling,
            effect,
            {"level": level, "size": len(message)},
        )
