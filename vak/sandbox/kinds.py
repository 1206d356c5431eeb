"""The two kinds of skill binary, told apart by their header (no wasmtime import).

Why: the signed manifest names the kind (``module.kind``) and the kernel must
refuse a binary that is not what the manifest says before compiling it, on
the composition root's import-light path. A core module starts with
``\\0asm`` and version 1; a component with ``\\0asm``, version ``0x0d`` and
layer 1 (the component model's binary header)::

    >>> binary_kind(b"\\0asm\\x01\\0\\0\\0")
    'core'
    >>> binary_kind(b"\\0asm\\x0d\\0\\x01\\0")
    'component'
    >>> binary_kind(b"(module)")
    'unknown'
"""

from __future__ import annotations

__all__ = ["WIT_WORLD", "binary_kind"]

#: the WIT world (package@version/world) components are built against
WIT_WORLD = "vak:skill/skill@0.1.0"

_MAGIC = b"\0asm"


def binary_kind(data: bytes) -> str:
    """``"core"``, ``"component"`` or ``"unknown"`` (text, truncated, another layer)."""
    head = bytes(data[:8])
    if len(head) < 8 or head[:4] != _MAGIC:
        return "unknown"
    if head[4:8] == b"\x01\0\0\0":
        return "core"
    if head[6:8] == b"\x01\0":
        return "component"
    return "unknown"
