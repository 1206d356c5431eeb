"""A commented ``vak.toml`` generated from the settings dataclasses, so it never drifts.

Every field of :class:`vak.config.KernelConfig` becomes a key: its own scalar
fields at the top level, each field holding a settings dataclass (``engine``,
``worker``, ``host``, ``policy``, ``audit``) a ``[table]`` of that class's
fields. A key's comment is the field's ``#:`` comment (and a trailing ``#``
comment) in the class source; its default comes from ``KernelConfig()``.
Keys the caller sets are written as values, every other key commented out
with its default, so the file documents every option and still parses::

    >>> text = render_config({"trust_store": "trust.yaml"})
    >>> 'trust_store = "trust.yaml"' in text
    True
"""

from __future__ import annotations

import enum
import inspect
import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, fields, is_dataclass
from functools import cache
from pathlib import PurePath
from typing import Any

__all__ = ["ConfigKey", "config_keys", "field_docs", "render_config", "toml_value"]

_FIELD = re.compile(r"^\s+(\w+)\s*:\s*[^=]")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """``field -> comment`` from the ``#:`` lines above each field (and a trailing comment)."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(("def ", "@", "class ")):
            text = list(pending)
            code, sep, trailing = line.partition("  # ")
            if sep and code.count('"') % 2 == 0:
                text.append(trailing.strip())
            if text:
                docs.setdefault(match.group(1), " ".join(text))
        pending = []
    return docs


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal (bool, int, str, path, list, table, enum).

    Raises:
        TypeError: a value TOML cannot hold (``None``, a float NaN, an object).
    """
    if isinstance(value, enum.Enum):
        return toml_value(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | PurePath):
        return _toml_string(str(value))
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_string(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple | frozenset | set):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class ConfigKey:
    """One key of ``vak.toml``: table ("" for top level), name, default, comment."""

    __slots__ = ("default", "doc", "name", "table")

    def __init__(self, table: str, name: str, default: Any, doc: str) -> None:
        self.table, self.name, self.default, self.doc = table, name, default, doc

    @property
    def dotted(self) -> str:
        return f"{self.table}.{self.name}" if self.table else self.name


def _default_of(f: Field[Any], instance: Any) -> Any:
    if instance is not None:
        return getattr(instance, f.name)
    if f.default is not MISSING:
        return f.default
    return None


def config_keys() -> Iterator[ConfigKey]:
    """Every key of ``vak.toml``, top-level keys first, then each table's."""
    from vak.config import KernelConfig

    default = KernelConfig()
    tables = []
    docs = field_docs(KernelConfig)
    for f in fields(KernelConfig):
        value = getattr(default, f.name)
        if is_dataclass(value) and not isinstance(value, type):
            tables.append((f.name, value))
        else:
            yield ConfigKey("", f.name, value, docs.get(f.name, ""))
    for table, settings in tables:
        sdocs = field_docs(type(settings))
        for f in fields(settings):
            yield ConfigKey(table, f.name, _default_of(f, settings), sdocs.get(f.name, ""))


def _comment(text: str, width: int = 88) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(text, width - 2)] if text else []


def _key_lines(key: ConfigKey, values: Mapping[str, Any]) -> list[str]:
    lines = _comment(key.doc)
    chosen = values.get(key.dotted, values.get(key.name, MISSING))
    if chosen is not MISSING:
        lines.append(f"{key.name} = {toml_value(chosen)}")
        return lines
    if key.default is None:
        lines.append(f"# {key.name} =   (default: not set)")
    else:
        lines.append(f"# {key.name} = {toml_value(key.default)}")
    return lines


def render_config(values: Mapping[str, Any], header: str = "") -> str:
    """The whole commented ``vak.toml``; ``values`` (by ``table.name`` or ``name``) are set.

    Raises:
        TypeError: a value in ``values`` has no TOML form.
    """
    out = [*(f"# {line}".rstrip() for line in header.splitlines()), ""] if header else []
    current = ""
    for key in config_keys():
        if key.table != current:
            current = key.table
            out += ["", f"[{key.table}]"]
        out += _key_lines(key, values)
        out.append("")
    return "\n".join(out).rstrip() + "\n"
