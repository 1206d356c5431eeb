"""The one scrubber: no secret value and no raw guest text leaves the kernel.

Every text the kernel shows to someone outside it -- a skill's output, an
error's message and details (returned to the model, printed by the CLI,
stored in ``invocation_finished``), every audit field -- passes through the
:class:`Scrubber` of the session it belongs to, built from the values of the
secrets that session holds (:mod:`vak.host.dataflow` tracks which). There is
no second scrubber: the mediation, the kernel and the adapters all call this
module.

What it catches, and why it is shaped this way:

* **decoded JSON** (:meth:`Scrubber.data`, :meth:`Scrubber.output`): every
  string and every key after ``orjson`` decoding, so any JSON spelling of the
  value (``\\u`` escapes, escaped solidus, surrogate pairs) is seen as the
  characters it decodes to;
* **text** (:meth:`Scrubber.text`): the value itself and the forms in which
  kernel code quotes guest strings: JSON (ASCII and UTF-8), Python ``repr`` of
  the string and of its UTF-8 bytes, percent-encoding, IDNA; matched without
  regard to case (hosts and percent-escapes are case-normalised);
* **folded view**: after substitution the text is also *folded* (literal
  ``\\uXXXX``/``\\UXXXXXXXX``/``\\xNN``/``%NN``/``&#NN;`` escapes decoded,
  NFKC, control and format characters such as zero-width spaces dropped,
  case-folded); if the value still appears there, the whole text is replaced
  by :data:`REDACTED`.

What exact matching cannot catch (documented in docs/POLICY.md, "Secrets as
data flow"): a value split across two strings or two outputs, encoded
(base64, hex, reversed, one character per line), or shorter than
:data:`MIN_LEN`. The data-flow labels (``secret:<name>``) are the operator's
tool for those: a policy can refuse the channels a labelled session may use.

Also here: :func:`excerpt` and :func:`quote` (how a refusal message names a
guest-supplied argument: bounded, escaped, scrubbed, with a digest) and
:func:`scrub_error` (an error made safe to show, in place). Escaping itself is
:func:`vak.text.escape`, the one rule for every untrusted text (re-exported
here as ``escape`` for the guest-text callers).

Example::

    >>> s = Scrubber(["hunter2-token"])
    >>> s.text("bad header 'hunter2-token'")
    "bad header '[REDACTED]'"
    >>> s.data({"k": "\\u0068unter2-token"}) == {"k": "\\u0068unter2-token"}
    True
    >>> s.data({"k": "hunter2-token"})
    {'k': '[REDACTED]'}
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote as _pct

import orjson

from vak.text import escape, json_escape

__all__ = [
    "EMPTY",
    "MIN_LEN",
    "REDACTED",
    "Scrubber",
    "digest",
    "escape",
    "excerpt",
    "quote",
    "scrub_error",
]

#: what replaces a secret value (or a whole text whose folded view holds one)
REDACTED = "[REDACTED]"
#: shorter values are not matched: redacting every "abc" would mangle all text
MIN_LEN = 4
#: longest message kept in an error after scrubbing (characters)
MAX_MESSAGE = 2000
#: longest string detail kept in an error after scrubbing (characters)
MAX_DETAIL = 1000
#: how deep error details are walked (deeper structure is replaced)
_MAX_DEPTH = 16
#: nesting below which decoded output is rebuilt recursively (deeper: checked iteratively)
_MAX_WALK = 200

_ESCAPES = re.compile(
    r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|%([0-9a-fA-F]{2})|\\U([0-9a-fA-F]{8})"
    r"|&#[xX]([0-9a-fA-F]{1,6});|&#([0-9]{1,7});"
)
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _forms(value: str) -> set[str]:
    """The spellings under which kernel code may quote ``value`` in a text."""
    forms = {value}
    forms.add(orjson.dumps(value).decode()[1:-1])
    forms.add(_json_ascii(value))
    forms.add(repr(value)[1:-1])
    raw = value.encode("utf-8", "surrogatepass")
    forms.add(repr(raw)[2:-1])
    forms.add(_pct(raw, safe=""))
    forms.add(_pct(raw, safe="/:@"))
    with contextlib.suppress(UnicodeError):
        forms.add(value.encode("idna").decode("ascii"))
    return {f for f in forms if len(f) >= MIN_LEN}


def _json_ascii(value: str) -> str:
    return "".join("\\" + ch if ch in '"\\' else ch if 0x20 <= ord(ch) < 0x7F
                   else json_escape(ch) for ch in value)


def _unescape(match: re.Match[str]) -> str:
    hex_text = next((g for g in match.groups()[:5] if g), None)
    code = int(hex_text, 16) if hex_text is not None else int(match.group(6))
    return chr(code) if code <= 0x10FFFF else match.group(0)


def _fold(text: str) -> str:
    """A view of ``text`` in which trivially disguised values show up as themselves."""
    for _ in range(3):  # double-escaped forms unfold in a few rounds
        unfolded = _ESCAPES.sub(_unescape, text)
        if unfolded == text:
            break
        text = unfolded
    text = text.replace("\\", "")  # leftovers of a doubled escape (\\\\u0074 -> \\t)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROP_CATEGORIES)
    return text.casefold()


def _plain(text: str) -> bool:
    """True when folding ``text`` could reveal nothing a case-blind search misses:
    printable ASCII without escape introducers (the common case, kept cheap)."""
    return (text.isascii() and text.isprintable() and "%" not in text and "\\" not in text
            and "&#" not in text)


def _alternation(forms: Iterable[str], flags: int) -> re.Pattern[str] | None:
    ordered = sorted(set(forms), key=lambda f: (-len(f), f))
    if not ordered:
        return None
    return re.compile("|".join(re.escape(f) for f in ordered), flags)


class Scrubber:
    """Redaction of one fixed set of secret values (immutable; cheap to share).

    A scrubber with no values is falsy and every method is the identity, so
    the common case (a session that holds no secret) costs one truth test.
    """

    __slots__ = ("_direct", "_folded", "_needles", "_values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        kept = frozenset(v for v in values if isinstance(v, str) and len(v) >= MIN_LEN)
        self._values = kept
        forms: set[str] = set()
        for value in kept:
            forms |= _forms(value)
        #: replaces the forms (case-blind); used only once a needle was found
        self._direct = _alternation(forms, re.IGNORECASE)
        #: the forms lower-cased: substring tests on lower-cased text are what
        #: keeps the common case (nothing to find) cheap
        self._needles = tuple(sorted({f.lower() for f in forms}, key=len, reverse=True))
        self._folded = tuple(sorted({f for f in (_fold(v) for v in kept) if len(f) >= MIN_LEN}))

    def __bool__(self) -> bool:
        return self._direct is not None

    def _hit(self, text: str) -> bool:
        low = text.lower()
        return any(n in low for n in self._needles)

    def _folded_hit(self, text: str) -> bool:
        if not self._folded or _plain(text):
            return False
        view = _fold(text)
        return any(f in view for f in self._folded)

    @property
    def values(self) -> frozenset[str]:
        """The values this scrubber redacts (for building a larger one)."""
        return self._values

    def leaks(self, text: str) -> bool:
        """Whether ``text`` holds a value, directly or in its folded view."""
        if self._direct is None:
            return False
        return self._hit(text) or self._folded_hit(text)

    def text(self, text: str) -> str:
        """``text`` with every value redacted (wholly, when only its folded view holds one)."""
        if self._direct is None:
            return text
        out = self._direct.sub(REDACTED, text) if self._hit(text) else text
        if self._hit(out) or self._folded_hit(out):
            return REDACTED  # only a folded (or case-mapped) view still holds a value
        return out

    def data(self, value: Any) -> Any:
        """Decoded JSON with every string and every key scrubbed (a new structure
        only where something changed; the input is never mutated).

        Numbers are checked through their decimal text (a numeric secret
        output as a JSON number); a hit replaces the number by :data:`REDACTED`.
        """
        if self._direct is None:
            return value
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # not plain JSON (too deep, foreign types): walk it all
            return self._walk(value)
        if _plain(text) and not self._hit(text):
            # every string, key and number appears verbatim in ``text``: nothing to find
            return value
        return self._walk(value)

    def _walk(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return REDACTED if self._hit(repr(value)) else value
        if depth >= _MAX_WALK and isinstance(value, dict | list):
            # past any sane nesting, a leaking subtree is dropped whole (no recursion limit)
            return REDACTED if self._subtree_leaks(value) else value
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            changed = False
            for key, item in value.items():
                new_key = self.text(key) if isinstance(key, str) else key
                new_item = self._walk(item, depth + 1)
                changed = changed or new_key is not key or new_item is not item
                if new_key in out:  # two keys redacted alike: keep both, distinctly
                    new_key = f"{new_key}#{len(out)}"
                    changed = True
                out[new_key] = new_item
            return out if changed else value
        if isinstance(value, list):
            items = [self._walk(v, depth + 1) for v in value]
            return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
        return value

    def _subtree_leaks(self, value: Any) -> bool:
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if self.leaks(item):
                    return True
            elif isinstance(item, int | float) and not isinstance(item, bool):
                if self._hit(repr(item)):
                    return True
            elif isinstance(item, dict):
                stack.extend(k for k in item if isinstance(k, str))
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return False

    def output(self, raw: bytes) -> bytes:
        """Skill output (UTF-8 JSON) checked *after decoding*; re-encoded only if changed.

        Output that is not JSON is returned as it is (the engine has refused
        it already; the kernel never shows it).
        """
        if self._direct is None:
            return raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
        if _plain(text) and not self._hit(text):
            return raw  # no escapes: every decoded string appears verbatim in ``text``
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        clean = self._walk(decoded)
        if clean is decoded and not self._hit(text):
            return raw
        # re-encoded also when only the raw text held a value (a duplicate key that
        # decoding dropped): the bytes kept for the record never hold one either
        try:
            return orjson.dumps(clean)
        except TypeError:  # deeper than the encoder goes: nothing of it is kept
            return orjson.dumps(REDACTED)

    def fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Audit fields with every string (and key) scrubbed."""
        out = self.data(fields)
        return out if isinstance(out, dict) and out is not fields else dict(out)

    def union(self, values: Iterable[str]) -> Scrubber:
        """A scrubber for these values and ``values``."""
        return Scrubber(self._values | frozenset(values))


EMPTY = Scrubber()


def digest(data: str | bytes) -> str:
    """A short, stable name for guest-supplied text: ``sha256:`` + 16 hex digits.

    Unkeyed on purpose (an operator can compute it from a suspected value);
    16 hex digits say nothing useful about a high-entropy secret.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def excerpt(text: str, scrubber: Scrubber = EMPTY, limit: int = 48) -> str:
    """A bounded, escaped, scrubbed excerpt of guest-supplied ``text``.

    Scrubbed on the whole text first, so a value that straddles the cut is
    still redacted; then cut to ``limit`` characters and escaped.
    """
    clean = scrubber.text(text)
    if len(clean) > limit:
        clean = clean[:limit] + f"...(+{len(clean) - limit} chars)"
    return escape(clean)


def quote(text: str, scrubber: Scrubber = EMPTY, limit: int = 48) -> str:
    """How a message names a guest-supplied argument: ``"excerpt" (sha256:...)``."""
    return f'"{excerpt(text, scrubber, limit)}" ({digest(text)})'


def scrub_error(exc: BaseException, scrubber: Scrubber = EMPTY) -> BaseException:
    """Make ``exc`` safe to show and to record, in place; returns it.

    For a :class:`~vak.errors.VakError`: the message is scrubbed, escaped and
    bounded (``args`` too, so ``str(exc)`` agrees); every string detail is
    scrubbed, escaped and bounded; ``bytes`` details (raw guest output, raw
    arguments) are replaced by their size and :func:`digest`. The exception
    context chain is cut, so a traceback cannot show an unscrubbed inner
    message. Other exceptions are left alone (the kernel records only their
    type name).
    """
    from vak.errors import VakError

    if not isinstance(exc, VakError):
        return exc
    message = escape(scrubber.text(exc.message), backslash=False)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "..."
    exc.message = message
    exc.args = (message,)
    exc.details = {
        _detail_key(k, scrubber): _detail(v, scrubber, 0) for k, v in exc.details.items()
    }
    exc.__suppress_context__ = True
    exc.__cause__ = None
    return exc


def _detail_key(key: Any, scrubber: Scrubber) -> str:
    return escape(scrubber.text(str(key)), backslash=False)[:64]


def _detail(value: Any, scrubber: Scrubber, depth: int) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        clean = escape(scrubber.text(value), backslash=False)
        return clean if len(clean) <= MAX_DETAIL else clean[:MAX_DETAIL] + "..."
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return {"size": len(raw), "digest": digest(raw)}
    if depth >= _MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, Mapping):
        return {_detail_key(k, scrubber): _detail(v, scrubber, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_detail(v, scrubber, depth + 1) for v in value]
    return _detail(str(value), scrubber, depth)
