"""Text from a file in a message: escaped and bounded, so it can neither forge lines nor flood.

A manifest, trust store or key file is written by someone else; a value or
key quoted back in an error message or a listing could carry a newline or
a terminal escape that forges a line, or a megabyte that buries the rest.
Every message that quotes such text goes through :func:`excerpt`; the
escaping is :func:`vak.text.printable` (the one rule, :mod:`vak.text`).

Example::

    >>> excerpt("bad\\nname\\x1b[2J")
    "'bad\\\\nname\\\\x1b[2J'"
"""

from __future__ import annotations

from typing import Any

from vak.text import printable

__all__ = ["excerpt"]


def excerpt(value: Any, *, quote: bool = True, limit: int = 120) -> str:
    """``repr(value)`` (or, without ``quote``, :func:`printable` text), at most ``limit`` long.

    A longer rendering keeps its beginning and its end (where a message such
    as "'xxx' is too long" says what is wrong) around ``...``.
    """
    text = repr(value) if quote else printable(str(value))
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return text[:half] + "..." + text[-half:]
