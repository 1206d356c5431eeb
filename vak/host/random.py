"""The ``random_bytes`` host function: bytes from the OS CSPRNG.

Arguments and replies: docs/HOST-FUNCTIONS.md.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from vak.host.base import EffectScope, NormalCall
from vak.host.calls import MAX_RANDOM

__all__ = ["MAX_RANDOM", "RandomFamily"]


class RandomFamily:
    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        return {"b64": base64.b64encode(os.urandom(call.params["n"])).decode()}
