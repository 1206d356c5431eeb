"""Untrusted text made safe to print: the one escaping rule of VAK.

Text that someone else wrote -- a skill's strings (log lines, arguments quoted
in a refusal), a file's values (manifest, trust store, key comments), a log's
fields (printed by ``vak-audit``) -- can carry a newline that forges a line,
a terminal escape that moves the cursor or recolours the screen, a bidi
override that reorders what is read, or a zero-width character that hides
something. Every place that prints such text escapes it here, with one rule:

* every character that :meth:`str.isprintable` rejects (all control, format,
  separator, private-use, surrogate and unassigned characters; plain space is
  printable) is written as an escape: ``\\xNN``, ``\\uNNNN`` or
  ``\\UNNNNNNNN``, or ``\\n``, ``\\t``, ``\\r`` with ``short`` escapes;
* with ``backslash`` a backslash is doubled, so an escape in the output can
  never be confused with one the text spelled itself;
* with ``keep_newlines`` a newline stays a line break (a multi-line message
  the caller wrote), every other character is still escaped.

:func:`json_safe` applies the same rule to JSON text, where an escape must be
JSON's own (``\\uNNNN``, surrogate pairs beyond the BMP) so the output still
parses to the same value.

The module imports nothing of VAK and nothing outside the standard library,
so every room -- the audit verifier's readers included -- may use it.

Example::

    >>> escape("ok\\n\\x1b[2J")
    'ok\\\\x0a\\\\x1b[2J'
    >>> escape("a\\tb\\\\c", backslash=False, short=True)
    'a\\\\tb\\\\c'
    >>> escape("two\\nlines\\u202e", keep_newlines=True, short=True)
    'two\\nlines\\\\u202e'
"""

from __future__ import annotations

__all__ = ["escape", "json_escape", "json_safe", "printable", "terminal"]

_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escaped(ch: str, short: bool) -> str:
    if short and ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, *, backslash: bool = True, keep_newlines: bool = False,
           short: bool = False) -> str:
    """``text`` with every non-printable character escaped (see the module docstring)."""
    if text.isprintable() and (not backslash or "\\" not in text):
        return text
    if keep_newlines and "\n" in text:
        return "\n".join(escape(part, backslash=backslash, short=short)
                         for part in text.split("\n"))
    out = []
    for ch in text:
        if ch == "\\" and backslash:
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(_escaped(ch, short))
    return "".join(out)


def printable(text: str) -> str:
    """A value from a file on one line: non-printables as ``\\n``/``\\x1b``-style escapes."""
    return escape(text, backslash=False, short=True)


def terminal(text: str, *, keep_newlines: bool = True) -> str:
    """A line (or, with ``keep_newlines``, lines) for the terminal: like :func:`printable`,
    but the caller's own line breaks may stay."""
    return escape(text, backslash=False, keep_newlines=keep_newlines, short=True)


def json_safe(json_text: str) -> str:
    """JSON text with every non-printable character (but a newline between tokens)
    as a JSON ``\\u`` escape: the same value, safe to print.

    Inside a JSON string a newline is already written ``\\n`` by any encoder, so a
    raw newline can only be the layout of indented output, and it is kept.
    """
    if json_text.isprintable():
        return json_text
    return "".join(ch if ch == "\n" or ch.isprintable() else json_escape(ch)
                   for ch in json_text)


def json_escape(ch: str) -> str:
    """One character as JSON writes it escaped: ``\\uNNNN``, a surrogate pair beyond
    the BMP."""
    code = ord(ch)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"
