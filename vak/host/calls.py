"""The pure normaliser of every host function: guest arguments -> :class:`NormalCall`.

Each function here is referenced by its row in :mod:`vak.host.catalog` and is a
pure function of ``(args, skill, settings)``: no I/O, no DNS, no clock, no
secret lookup, no verdict. That is what lets the mediation memoise a
normalisation by the exact argument bytes and what lets
:meth:`vak.host.mediation.Mediator.explain` show a decision without performing
anything. Refusals raise :class:`~vak.errors.ABIError` (a malformed argument:
``vak.invalid-args``) or :class:`~vak.host.normalize.NormalizeError` (a refused
target: ``vak.invalid-target``).

An http call naming a host gets ``ip = ""`` and ``ip_class = "unresolved"``:
the first of its two decisions is made on the URL alone, before any DNS
(:func:`with_addresses` gives the second its resource).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from vak.errors import ABIError
from vak.host.base import NormalCall, arg_bool, arg_int, arg_str
from vak.host.normalize import NormalizeError, classify_ip, normalize_path, normalize_url
from vak.host.settings import HostSettings
from vak.policy.entities import Entity, dir_entity, file_entity, kernel_entity

__all__ = [
    "HTTP_METHODS",
    "LOG_LEVELS",
    "MAX_BODY",
    "MAX_HEADERS",
    "MAX_KEY",
    "MAX_LIST",
    "MAX_MESSAGE",
    "MAX_RANDOM",
    "MAX_VALUE",
    "MAX_WRITE",
    "NORMALISERS",
    "NO_ADDRESS",
    "SECRET_NAME",
    "UNRESOLVED",
    "Normaliser",
    "with_addresses",
]

Normaliser = Callable[[Mapping[str, Any], str, HostSettings], NormalCall]

MAX_WRITE = 1 << 20
MAX_LIST = 1000
MAX_KEY = 256
MAX_VALUE = 64 << 10
MAX_BODY = 1 << 20
MAX_HEADERS = 64
MAX_MESSAGE = 8192
MAX_RANDOM = 4096
LOG_LEVELS = ("debug", "info", "warning", "error")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: secret names: what ``secret_get`` accepts
SECRET_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
#: ``ip_class`` of a host name before it is resolved (the URL decision)
UNRESOLVED = "unresolved"
#: ``ip_class`` of a host name that resolved to no address
NO_ADDRESS = "no_address"

_METHODS = frozenset(HTTP_METHODS)
_SECRET = re.compile(SECRET_NAME)
_FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
    }
)
_MAX_PATH_ARG = 1 << 20  # longer than MAX_PATH on purpose: normalize_path refuses it


# -- fs -------------------------------------------------------------------------------
def _path(args: Mapping[str, Any]) -> str:
    return normalize_path(arg_str(args, "path", max_len=_MAX_PATH_ARG))


def fs_read(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"path", "max_bytes"?}``: the file and how much of it (capped by the settings)."""
    path = _path(args)
    cap = s.fs_max_read_bytes
    max_bytes = arg_int(args, "max_bytes", default=cap, lo=0, hi=cap)
    return NormalCall(file_entity(path), {"max_bytes": max_bytes}, {"path": path}, path,
                      {"max_bytes": max_bytes})


def fs_write(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"path", "content", "append"?}``: Cedar sees the size, never the content."""
    path = _path(args)
    content = arg_str(args, "content", max_len=MAX_WRITE)
    append = arg_bool(args, "append", default=False)
    data = content.encode("utf-8", "surrogatepass")
    return NormalCall(file_entity(path), {"size": len(data), "append": append},
                      {"path": path, "size": len(data)}, path, {"data": data, "append": append})


def fs_list(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"path"}``: a ``Vak::Dir`` (parents: its ancestors)."""
    path = _path(args)
    return NormalCall(dir_entity(path), {}, {"path": path}, path)


# -- http -----------------------------------------------------------------------------
def http_request(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"url", "method"?, "headers"?, "body"?, "timeout_ms"?, "max_bytes"?}``.

    Cedar sees the method, header names and body size, never header values or
    the body; kernel-owned headers (Host, Content-Length, ...) are refused.
    """
    n = normalize_url(arg_str(args, "url", max_len=_MAX_PATH_ARG))
    method = arg_str(args, "method", default="GET", max_len=16).upper()
    if method not in _METHODS:
        raise NormalizeError(f"method not allowed (one of {', '.join(HTTP_METHODS)})")
    headers = _headers(args.get("headers", {}))
    body = arg_str(args, "body", default="", max_len=MAX_BODY).encode("utf-8", "surrogatepass")
    timeout_ms = arg_int(args, "timeout_ms", default=s.http_timeout_ms, lo=1,
                         hi=s.http_timeout_ms)
    cap = s.http_max_response_bytes
    max_bytes = arg_int(args, "max_bytes", default=cap, lo=0, hi=cap)
    try:  # an IP literal is its own (only) address: one decision covers URL and address
        ip, ip_class = n.host, classify_ip(n.host)
    except NormalizeError:
        ip, ip_class = "", UNRESOLVED
    context = {
        "method": method,
        "header_names": sorted(headers),
        "body_size": len(body),
        "timeout_ms": timeout_ms,
    }
    params = {"method": method, "headers": headers, "body": body, "timeout_ms": timeout_ms,
              "max_bytes": max_bytes}
    return NormalCall(_url_entity(n.url, n.scheme, n.host, n.port, n.target, ip, ip_class),
                      context, {"url": n.url, "method": method, "ip": ip, "ip_class": ip_class},
                      n.authority, params, n)


def _url_entity(url: str, scheme: str, host: str, port: int, path: str, ip: str,
                ip_class: str) -> Entity:
    return Entity("Vak::Url", url, {"scheme": scheme, "host": host, "port": port, "path": path,
                                    "ip": ip, "ip_class": ip_class})


def with_addresses(call: NormalCall, addresses: tuple[str, ...], error: str = "",
                   deadline: float | None = None) -> NormalCall:
    """The address decision's call: ``call`` (an unresolved http call) pinned to
    the first of ``addresses``, classed by all of them (``mixed`` if they
    disagree, ``no_address`` if there are none), keeping the exchange's
    ``deadline`` (``time.monotonic()``) when given. Pure.
    """
    n = call.url
    if n is None:
        raise ValueError("with_addresses needs an http call")
    classes = []
    for a in addresses:
        try:
            classes.append(classify_ip(a))
        except NormalizeError:
            classes.append("invalid")
    if not addresses:
        ip, ip_class = "", NO_ADDRESS
    else:
        ip, ip_class = addresses[0], classes[0] if len(set(classes)) == 1 else "mixed"
    summary = {**call.summary, "ip": ip, "ip_class": ip_class}
    if len(addresses) > 1:
        summary["addresses"] = list(addresses[:16])
    if error or not addresses:
        summary["dns_error"] = (error or "no addresses")[:200]
    params = call.params if deadline is None else {**call.params, "deadline": deadline}
    return NormalCall(_url_entity(n.url, n.scheme, n.host, n.port, n.target, ip, ip_class),
                      call.context, summary, call.target, params, n)


def _headers(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or len(raw) > MAX_HEADERS:
        raise ABIError(
            f"headers must be an object of at most {MAX_HEADERS} strings", argument="headers"
        )
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(v, str) or not k or len(k) > 256 or len(v) > 8192:
            raise ABIError("header names and values must be short strings", argument="headers")
        if any(c in k for c in ":\r\n\x00 ") or any(c in v for c in "\r\n\x00"):
            raise NormalizeError("a header name or value contains forbidden characters")
        if k.lower() in _FORBIDDEN_HEADERS:
            raise NormalizeError(f"header {k.lower()} is set by the kernel")
        out[k.lower()] = v
    return out


# -- kv -------------------------------------------------------------------------------
def _key(args: Mapping[str, Any], name: str, *, allow_empty: bool = False) -> str:
    key = arg_str(args, name, default="" if allow_empty else None, max_len=MAX_KEY)
    if (not key and not allow_empty) or "\x00" in key:
        raise NormalizeError(f"kv {name} must be 1..{MAX_KEY} characters without NUL")
    return key


def _kv_key(skill: str, key: str) -> Entity:
    return Entity("Vak::KvKey", f"{skill}/{key}", {"namespace": skill, "key": key},
                  (("Vak::KvNamespace", skill),))


def _kv_keyed(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"key"}`` (kv_get, kv_delete) in the caller's namespace."""
    key = _key(args, "key")
    return NormalCall(_kv_key(skill, key), {}, {"namespace": skill, "key": key}, key,
                      {"namespace": skill, "key": key})


def kv_put(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"key", "value"}`` in the caller's namespace; Cedar sees the size."""
    key = _key(args, "key")
    value = arg_str(args, "value", max_len=MAX_VALUE)
    return NormalCall(_kv_key(skill, key), {"size": len(value)},
                      {"namespace": skill, "key": key, "size": len(value)}, key,
                      {"namespace": skill, "key": key, "value": value})


def kv_list(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"prefix"?, "limit"?}``: the caller's namespace, never another's."""
    prefix = _key(args, "prefix", allow_empty=True)
    limit = arg_int(args, "limit", default=100, lo=1, hi=1000)
    return NormalCall(Entity("Vak::KvNamespace", skill, {"name": skill}), {},
                      {"namespace": skill, "prefix": prefix}, prefix,
                      {"namespace": skill, "prefix": prefix, "limit": limit})


# -- secrets --------------------------------------------------------------------------
def secret_get(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"name"}``: a name of the secret-name grammar."""
    name = arg_str(args, "name", max_len=128)
    if not _SECRET.match(name):
        raise NormalizeError("secret name must match [A-Za-z_][A-Za-z0-9_.-]{0,127}")
    return NormalCall(Entity("Vak::Secret", name, {"name": name}), {}, {"name": name}, name,
                      {"name": name})


# -- obs ------------------------------------------------------------------------------
def log(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"message", "level"?}``: Cedar sees the level and size, not the text."""
    message = arg_str(args, "message", max_len=MAX_MESSAGE)
    level = arg_str(args, "level", default="info", max_len=16)
    if level not in LOG_LEVELS:
        raise NormalizeError(f"log level must be one of {sorted(LOG_LEVELS)}")
    fields = {"level": level, "size": len(message)}
    return NormalCall(kernel_entity(), fields, fields, "",
                      {"level": level, "message": message, "logger": f"vak.skill.{skill}"})


def clock_now(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{}``."""
    return NormalCall(kernel_entity(), {})


def random_bytes(args: Mapping[str, Any], skill: str, s: HostSettings) -> NormalCall:
    """``{"n"?}``: 1..MAX_RANDOM bytes."""
    n = arg_int(args, "n", default=32, lo=1, hi=MAX_RANDOM)
    return NormalCall(kernel_entity(), {"n": n}, {"n": n}, "", {"n": n})


#: function name -> normaliser (the catalog's rows point here)
NORMALISERS: dict[str, Normaliser] = {
    "log": log,
    "clock_now": clock_now,
    "random_bytes": random_bytes,
    "fs_read": fs_read,
    "fs_write": fs_write,
    "fs_list": fs_list,
    "http_request": http_request,
    "kv_get": _kv_keyed,
    "kv_put": kv_put,
    "kv_delete": _kv_keyed,
    "kv_list": kv_list,
    "secret_get": secret_get,
}
