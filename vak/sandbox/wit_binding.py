"""The ``vak:skill`` WIT world's host functions, as conversions to and from the JSON ABI.

Why: a component's host call must reach the same :class:`HostHandler` as a
core module's, with the same JSON arguments, so that Cedar, the audit log and
the effect see one shape whatever language the skill was written in. This
module is only that conversion: WIT values (as wasmtime-py lifts them:
``str``, ``int``, ``bytes``, ``Record``, enum case names) become the JSON
object the core ABI's ``vak.<name>`` import would have sent, and the JSON
reply becomes the WIT result. Nothing here decides anything.

    >>> b = BINDINGS[("vak:skill/kv", "put")]
    >>> b.host_function, b.args("k", "v")
    ('kv_put', {'key': 'k', 'value': 'v'})
    >>> b.reply({"ok": True}) is None
    True
    >>> err = b.reply({"error": "host_failure", "message": "host function failed"})
    >>> err.tag, err.payload.code
    ('failed', 'host_failure')

Invariants:
* every binding names a row of the host catalog (checked by the engine at
  start against the names it was given);
* a reply of the wrong shape is the kernel's bug, never the guest's: it raises
  :class:`ReplyShapeError` (a trap for the guest), it is never guessed at;
* arguments the JSON ABI cannot carry (two HTTP headers with one name) are
  refused through ``handler.refuse`` by the caller (:class:`ArgumentRefused`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wasmtime.component import Record, Variant

__all__ = [
    "BINDINGS",
    "INTERFACE_VERSION",
    "PACKAGE",
    "ArgumentRefused",
    "Binding",
    "ReplyShapeError",
    "record",
]

#: the WIT package and version this kernel implements (``vak/wit/skill.wit``)
PACKAGE = "vak:skill"
INTERFACE_VERSION = "0.1.0"


class ArgumentRefused(Exception):
    """WIT arguments with no JSON form (the caller refuses the call, recorded)."""


class ReplyShapeError(Exception):
    """The mediation's reply does not have the shape the WIT result needs."""


def record(**fields: Any) -> Record:
    """A WIT record value for wasmtime-py: fields are attributes named as in WIT
    (``unix_ns`` here is the field ``unix-ns``)."""
    out = Record()
    for name, value in fields.items():
        setattr(out, name.replace("_", "-"), value)
    return out


def field(value: Any, name: str) -> Any:
    """Field ``name`` (``max_bytes`` for WIT ``max-bytes``) of a record wasmtime-py lifted."""
    return getattr(value, name.replace("_", "-"))


@dataclass(frozen=True, slots=True)
class Binding:
    """One WIT function: its catalog row and the two conversions."""

    host_function: str
    args: Callable[..., dict[str, Any]]
    reply: Callable[[Mapping[str, Any]], Any]


def _field(reply: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = reply.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ReplyShapeError(f"host reply field {name!r} is not {kind}")
    return value


def _host_error(reply: Mapping[str, Any]) -> Variant | None:
    """The WIT ``host-error`` for an ordinary failure reply, or None for success."""
    if "error" not in reply:
        return None
    code = reply.get("error")
    message = reply.get("message", "")
    if not isinstance(code, str) or not isinstance(message, str):
        raise ReplyShapeError("host error reply has non-string code or message")
    tag = "not-found" if code == "not_found" else "failed"
    return Variant(tag, record(code=code, message=message))


def _fallible(convert: Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, Any]], Any]:
    """``result<T, host-error>``: wasmtime-py lowers a ``Variant`` to the err case."""

    def reply(value: Mapping[str, Any]) -> Any:
        error = _host_error(value)
        return error if error is not None else convert(value)

    return reply


def _infallible(convert: Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, Any]], Any]:
    """A WIT function without ``result``: an error reply becomes a trap."""

    def reply(value: Mapping[str, Any]) -> Any:
        if "error" in value:
            raise ReplyShapeError("host function failed")
        return convert(value)

    return reply


def _b64(reply: Mapping[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(_field(reply, name, str), validate=True)
    except ValueError:
        raise ReplyShapeError(f"host reply field {name!r} is not base64") from None


def _content(reply: Mapping[str, Any], text: str, b64: str) -> bytes:
    """Bytes a reply carries as text (``text``) or, when not UTF-8, as base64 (``b64``)."""
    if text in reply:
        return str(_field(reply, text, str)).encode("utf-8", "surrogatepass")
    return _b64(reply, b64)


def _optional_max(max_bytes: int | None) -> dict[str, Any]:
    return {} if max_bytes is None else {"max_bytes": max_bytes}


def _fs_read(reply: Mapping[str, Any]) -> Record:
    return record(content=_content(reply, "content", "content_b64"),
                  truncated=bool(_field(reply, "truncated", bool)))


def _fs_list(reply: Mapping[str, Any]) -> Record:
    entries = []
    for entry in _field(reply, "entries", list):
        if not isinstance(entry, dict):
            raise ReplyShapeError("fs_list entry is not an object")
        kind = _field(entry, "type", str)
        if kind not in ("file", "dir", "symlink"):
            raise ReplyShapeError("fs_list entry has an unknown type")
        entries.append(record(name=_field(entry, "name", str), kind=kind))
    return record(entries=entries, truncated=bool(_field(reply, "truncated", bool)))


def _lookup(reply: Mapping[str, Any]) -> Record:
    found = bool(_field(reply, "found", bool))
    return record(found=found, value=_field(reply, "value", str) if found else "")


def _http_args(req: Any) -> dict[str, Any]:
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for header in req.headers:
        folded = header.name.lower()
        if folded in seen:
            raise ArgumentRefused("http request repeats a header name (the JSON ABI "
                                  "carries one value per header)")
        seen.add(folded)
        headers[header.name] = header.value
    return {"method": req.method, "url": req.url, "headers": headers, "body": req.body,
            **_optional_max(field(req, "max_bytes"))}


def _http_reply(reply: Mapping[str, Any]) -> Record:
    status = _field(reply, "status", int)
    if not 0 <= status <= 0xFFFF:
        raise ReplyShapeError("http status out of range")
    raw_headers = _field(reply, "headers", dict)
    headers = []
    for name, value in raw_headers.items():
        if not isinstance(value, str):
            raise ReplyShapeError("http header value is not a string")
        headers.append(record(name=name, value=value))
    return record(status=status, headers=headers, body=_content(reply, "body", "body_b64"),
                  truncated=bool(_field(reply, "truncated", bool)))


def _keys(reply: Mapping[str, Any]) -> list[str]:
    keys = _field(reply, "keys", list)
    if not all(isinstance(k, str) for k in keys):
        raise ReplyShapeError("kv_list keys are not strings")
    return list(keys)


def _u64(reply: Mapping[str, Any], name: str) -> int:
    value = _field(reply, name, int)
    if not 0 <= value < 1 << 64:
        raise ReplyShapeError(f"host reply field {name!r} is out of u64 range")
    return int(value)


def _none(reply: Mapping[str, Any]) -> None:
    return None


def _key(*names: str) -> Callable[..., dict[str, Any]]:
    def args(*values: Any) -> dict[str, Any]:
        return dict(zip(names, values, strict=True))

    return args


#: ``(interface without version, function) -> Binding``, for every WIT host function
BINDINGS: dict[tuple[str, str], Binding] = {
    ("vak:skill/log", "write"): Binding(
        "log", lambda level, message: {"level": level, "message": message},
        _infallible(_none)),
    ("vak:skill/fs", "read"): Binding(
        "fs_read", lambda path, max_bytes: {"path": path, **_optional_max(max_bytes)},
        _fallible(_fs_read)),
    ("vak:skill/fs", "write"): Binding(
        "fs_write", _key("path", "content"), _fallible(lambda r: _u64(r, "written"))),
    ("vak:skill/fs", "list"): Binding("fs_list", _key("path"), _fallible(_fs_list)),
    ("vak:skill/http", "send"): Binding("http_request", _http_args, _fallible(_http_reply)),
    ("vak:skill/kv", "get"): Binding("kv_get", _key("key"), _fallible(_lookup)),
    ("vak:skill/kv", "put"): Binding("kv_put", _key("key", "value"), _fallible(_none)),
    ("vak:skill/kv", "delete"): Binding(
        "kv_delete", _key("key"), _fallible(lambda r: bool(_field(r, "deleted", bool)))),
    ("vak:skill/kv", "list"): Binding("kv_list", _key("prefix", "limit"), _fallible(_keys)),
    ("vak:skill/secrets", "get"): Binding("secret_get", _key("name"), _fallible(_lookup)),
    ("vak:skill/clock", "now"): Binding(
        "clock_now", lambda: {},
        _infallible(lambda r: record(unix_ns=_u64(r, "unix_ns"),
                                     monotonic_ns=_u64(r, "monotonic_ns")))),
    ("vak:skill/random", "bytes"): Binding(
        "random_bytes", _key("n"), _infallible(lambda r: _b64(r, "b64"))),
}
