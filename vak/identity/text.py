"""Text from a file in a message: escaped and bounded, so it can neither forge lines nor flood.

A manifest, trust store or key file is written by someone else; a value or
key quoted back in an error message or a listing could carry a newline or
a terminal escape that forges a line, or a megabyte that buries the rest.
Every message that quotes such text goes through :func:`excerpt`.

Example::

    >>> excerpt("bad\\nname\\x1b[2J")
    "'bad\\\\nname\\\\x1b[2J'"
    >>> printable("a\\tb")
    'a\\\\tb'
"""

from __future__ import annotations

from typing import Any

__all__ = ["excerpt", "printable"]


def printable(text: str) -> str:
    """``text`` with every non-printable character (newline, ESC, U+2028...) escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


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
