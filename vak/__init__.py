"""VAK, the Verifiable Agent Kernel (public API lives here)."""

from __future__ import annotations

from vak.config import KernelConfig
from vak.errors import ToolCallError, VakError

__all__ = ["KernelConfig", "ToolCallError", "VakError"]
