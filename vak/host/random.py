"""The ``random_bytes`` host function: bytes from the OS CSPRNG.

Arguments (JSON): ``{"n"}`` (1..4096) -> ``{"b64"}``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

from vak.host.base import Prepared, arg_int
from vak.host.context import CallContext
from vak.policy.entities import kernel_entity

__all__ = ["MAX_RANDOM", "RandomFamily"]

MAX_RANDOM = 4096


class RandomFamily:
    def prepare(self, function: str, args: Mapping[str, Any], ctx: CallContext) -> Prepared:
        n = arg_int(args, "n", default=32, lo=1, hi=MAX_RANDOM)
        ceiling = None if ctx.manifest.capabilities.random else "the skill did not declare random"
        return Prepared(
            kernel_entity(),
            {"n": n},
            ceiling,
            lambda: {"b64": base64.b64encode(os.urandom(n)).decode()},
            {"n": n},
        )
