"""The catalog of host functions: the one description of each ``vak.<fn>`` import.

Each :class:`HostFunction` row says everything the kernel knows about one
function, and every other place derives from it:

* ``name``/``family``/``action``: the wasm import the sandbox links (anything
  else is refused at instantiation), the Cedar action (``policies/vak.cedarschema``
  declares one per row) and its action group;
* ``capability``: the manifest capability key the declared-capability ceiling
  checks (:mod:`vak.host.ceiling`);
* ``args_schema``/``reply_schema``: JSON Schemas of the guest's argument object
  and of the successful reply (an ordinary failure replies
  ``{"error": code, "message"}`` with a code from ``errors``);
* ``normalise``: the pure normaliser (:mod:`vak.host.calls`) the mediation runs
  before anything is decided;
* ``effect``: what an allowed call does; ``effectful``: whether its decision
  must be durable before it acts (everything that changes, reveals or emits);
  ``resolves``: decided twice (URL, then the resolved addresses);
* ``example``: one call and its reply, for docs/HOST-FUNCTIONS.md.

Adding a host function means adding a row here, an action in the Cedar schema
and a family that performs it. ``python -m vak.host.catalog --markdown`` prints
docs/HOST-FUNCTIONS.md (a test keeps the two equal).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vak.host.calls import (
    HTTP_METHODS,
    LOG_LEVELS,
    MAX_BODY,
    MAX_HEADERS,
    MAX_KEY,
    MAX_LIST,
    MAX_MESSAGE,
    MAX_RANDOM,
    MAX_VALUE,
    MAX_WRITE,
    NORMALISERS,
    SECRET_NAME,
    Normaliser,
)
from vak.host.ceiling import CAPABILITY_KEYS
from vak.host.normalize import MAX_PATH, MAX_URL

__all__ = ["HOST_FUNCTIONS", "TRAPS", "HostFunction", "host_function", "markdown"]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class HostFunction:
    """One importable host function (see the module docstring for each field)."""

    name: str  # wasm import name in module "vak"
    family: str  # fs | net | kv | secrets | obs
    action: str  # Cedar action id, e.g. 'Vak::Action::"fs_read"'
    effectful: bool
    capability: str
    summary: str
    args_schema: JSON
    reply_schema: JSON
    effect: str
    errors: tuple[str, ...] = ()
    example: tuple[JSON, JSON] = ({}, {})
    resolves: bool = False
    normalise: Normaliser = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalise", NORMALISERS[self.name])


def _obj(props: Mapping[str, JSON], required: tuple[str, ...] = ()) -> JSON:
    out: JSON = {"type": "object", "properties": dict(props)}
    if required:
        out["required"] = list(required)
    return out


def _str(desc: str, max_len: int, **kw: Any) -> JSON:
    return {"type": "string", "maxLength": max_len, "description": desc, **kw}


def _int(desc: str, lo: int, hi: int | None = None) -> JSON:
    out: JSON = {"type": "integer", "minimum": lo, "description": desc}
    if hi is not None:
        out["maximum"] = hi
    return out


_BOOL: JSON = {"type": "boolean"}
_PATH = _str(f"absolute guest path (normalised; at most {MAX_PATH} UTF-8 bytes)", MAX_PATH,
             pattern="^/")
_FS_ERRORS = ("no_mount", "not_found", "not_a_file", "not_a_directory", "is_a_directory",
              "symlink_refused", "outside_root", "permission_denied", "name_too_long",
              "exists", "mount_unavailable", "io_error", "host_failure")
_KEY = _str(f"1..{MAX_KEY} characters, no NUL; the namespace is the calling skill", MAX_KEY,
            minLength=1)
_CONTENT = {"content": _str("UTF-8 text (when the bytes decode)", MAX_WRITE),
            "content_b64": _str("base64 of the bytes (when they are not UTF-8)", 2 * MAX_WRITE),
            "truncated": _BOOL}

#: what every function may raise into the guest as a trap (the call does not return)
TRAPS: tuple[tuple[str, str], ...] = (
    ("PolicyDeniedError", "refused: `vak.capability-ceiling`, a Cedar policy id, "
     "`vak.invalid-target` or `vak.default-deny`"),
    ("ABIError", "malformed arguments (`vak.invalid-args`): not a JSON object, too deep, "
     "too large, a wrong type"),
    ("HostCallLimitError", "more host calls than `min(limits.max_host_calls, "
     "[host] max_host_calls)` (`vak.host-call-limit`)"),
    ("AuditError", "the decision could not be recorded (nothing was done)"),
)


def _row(name: str, family: str, effectful: bool, capability: str, summary: str,
         args: JSON, reply: JSON, effect: str, errors: tuple[str, ...],
         example: tuple[JSON, JSON], *, resolves: bool = False) -> HostFunction:
    if "host_failure" not in errors:  # any effect may fail unexpectedly
        errors += ("host_failure",)
    return HostFunction(name, family, f'Vak::Action::"{name}"', effectful, capability, summary,
                        args, reply, effect, errors, example, resolves)


HOST_FUNCTIONS: tuple[HostFunction, ...] = (
    _row("log", "obs", True, "log", "Write one diagnostic line.",
         _obj({"message": _str("the line", MAX_MESSAGE),
               "level": {"enum": list(LOG_LEVELS), "default": "info"}}, ("message",)),
         _obj({"ok": {"const": True}}, ("ok",)),
         "logs the line (secrets revealed to the session redacted) to the Python logger "
         "`vak.skill.<skill>` at `level`", (),
         ({"message": "started", "level": "info"}, {"ok": True})),
    _row("clock_now", "obs", False, "clock", "Read the wall clock and the monotonic clock.",
         _obj({}), _obj({"unix_ns": _int("ns since the epoch", 0),
                         "monotonic_ns": _int("ns on a monotonic clock", 0)},
                        ("unix_ns", "monotonic_ns")),
         "reads the clocks", (),
         ({}, {"unix_ns": 1764590000000000000, "monotonic_ns": 123456789})),
    _row("random_bytes", "obs", False, "random", "Bytes from the OS CSPRNG.",
         _obj({"n": _int("how many bytes", 1, MAX_RANDOM) | {"default": 32}}),
         _obj({"b64": _str("base64 of n random bytes", 2 * MAX_RANDOM)}, ("b64",)),
         "reads the OS random generator", (),
         ({"n": 4}, {"b64": "q83vEg=="})),
    _row("fs_read", "fs", True, "fs.read", "Read a file under an fs mount.",
         _obj({"path": _PATH, "max_bytes": _int("read at most this many bytes "
                                                "(default and cap: [host] fs_max_read_bytes)",
                                                0)}, ("path",)),
         _obj(_CONTENT, ("truncated",)),
         "opens the file beneath its mount without following symlinks and reads it",
         _FS_ERRORS,
         ({"path": "/workspace/notes.txt"}, {"content": "hello", "truncated": False})),
    _row("fs_write", "fs", True, "fs.write", "Create, replace or append to a file.",
         _obj({"path": _PATH, "content": _str("UTF-8 text to write", MAX_WRITE),
               "append": _BOOL | {"default": False}}, ("path", "content")),
         _obj({"written": _int("bytes written", 0)}, ("written",)),
         "writes the file beneath its mount without following symlinks", _FS_ERRORS,
         ({"path": "/workspace/out/r.txt", "content": "hi"}, {"written": 2})),
    _row("fs_list", "fs", True, "fs.read", "List a directory under an fs mount.",
         _obj({"path": _PATH}, ("path",)),
         _obj({"entries": {"type": "array", "maxItems": MAX_LIST, "items": _obj(
             {"name": {"type": "string"}, "type": {"enum": ["file", "dir", "symlink"]}},
             ("name", "type"))}, "truncated": _BOOL}, ("entries", "truncated")),
         "lists the directory (sorted by name)", _FS_ERRORS,
         ({"path": "/workspace"}, {"entries": [{"name": "a.txt", "type": "file"}],
                                   "truncated": False})),
    _row("http_request", "net", True, "http", "One HTTP(S) exchange with a declared host.",
         _obj({"url": _str("http or https URL, no userinfo", MAX_URL),
               "method": {"enum": list(HTTP_METHODS), "default": "GET"},
               "headers": {"type": "object", "maxProperties": MAX_HEADERS,
                           "additionalProperties": {"type": "string", "maxLength": 8192},
                           "description": "no Host, Content-Length, Transfer-Encoding, "
                                          "Connection, Upgrade, TE, Trailer, "
                                          "Proxy-Authorization; no CR, LF, NUL"},
               "body": _str("request body (UTF-8)", MAX_BODY),
               "timeout_ms": _int("deadline of the whole exchange (default and cap: "
                                  "[host] http_timeout_ms)", 1),
               "max_bytes": _int("response body cap (default and cap: "
                                 "[host] http_max_response_bytes)", 0)}, ("url",)),
         _obj({"status": _int("HTTP status (a 3xx is returned, never followed)", 100, 999),
               "headers": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "lower-cased names"},
               "body": _str("UTF-8 body", MAX_BODY), "body_b64": _str("base64 body", 2 * MAX_BODY),
               "truncated": _BOOL}, ("status", "headers", "truncated")),
         "URL decision, then (for a host name) DNS once and the address decision, then one "
         "exchange with the pinned address within one deadline",
         ("dns_failed", "timeout", "tls_error", "connect_failed", "host_failure"),
         ({"url": "https://api.example.com/v1/items", "method": "GET"},
          {"status": 200, "headers": {"content-type": "application/json"}, "body": "[]",
           "truncated": False}), resolves=True),
    _row("kv_get", "kv", True, "kv", "Read a key of the skill's own namespace.",
         _obj({"key": _KEY}, ("key",)),
         _obj({"found": _BOOL, "value": _str("the stored value", MAX_VALUE)}, ("found",)),
         "reads the kv store", (), ({"key": "greeting"}, {"found": True, "value": "hi"})),
    _row("kv_put", "kv", True, "kv", "Write a key of the skill's own namespace.",
         _obj({"key": _KEY, "value": _str("the value", MAX_VALUE)}, ("key", "value")),
         _obj({"ok": {"const": True}}, ("ok",)),
         "writes the kv store", (), ({"key": "greeting", "value": "hi"}, {"ok": True})),
    _row("kv_delete", "kv", True, "kv", "Delete a key of the skill's own namespace.",
         _obj({"key": _KEY}, ("key",)), _obj({"deleted": _BOOL}, ("deleted",)),
         "deletes from the kv store", (), ({"key": "greeting"}, {"deleted": True})),
    _row("kv_list", "kv", True, "kv", "List keys of the skill's own namespace.",
         _obj({"prefix": _str("only keys starting with this", MAX_KEY, default=""),
               "limit": _int("most keys returned", 1, 1000) | {"default": 100}}),
         _obj({"keys": {"type": "array", "items": {"type": "string"}, "maxItems": 1000}},
              ("keys",)),
         "lists keys in order", (), ({"prefix": "g"}, {"keys": ["greeting"]})),
    _row("secret_get", "secrets", True, "secrets", "Read a declared secret.",
         _obj({"name": {"type": "string", "pattern": SECRET_NAME}}, ("name",)),
         _obj({"found": _BOOL, "value": {"type": "string"}}, ("found",)),
         "reads the operator's secret provider; the value is then redacted from the "
         "session's output, log lines and audit entries", (),
         ({"name": "API_TOKEN"}, {"found": True, "value": "..."})),
)

_BY_NAME = {f.name: f for f in HOST_FUNCTIONS}


def host_function(name: str) -> HostFunction | None:
    """The catalog row for import ``name``, or None if the kernel offers no such function."""
    return _BY_NAME.get(name)


def _js(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def markdown() -> str:
    """docs/HOST-FUNCTIONS.md, generated from the rows above."""
    out = [
        "# VAK host functions",
        "",
        "<!-- generated by `python -m vak.host.catalog --markdown` from vak/host/catalog.py;"
        " do not edit -->",
        "",
        "A skill imports these from wasm module `vak`; each takes one JSON object (UTF-8,",
        "`(ptr, len)`, see docs/ABI.md) and returns one JSON object. Members not listed",
        "are ignored. Every call is normalised, checked against the declared capability,",
        "decided by Cedar and recorded before it acts (docs/POLICY.md). An ordinary",
        'failure replies `{"error": "<code>", "message": "..."}`; a refusal traps.',
        "",
        "Traps (every function):",
        "",
    ]
    out += [f"* `{name}`: {why}" for name, why in TRAPS]
    out += ["", "Capabilities (the declared-capability ceiling; `skill.yaml`, docs/MANIFEST.md):",
            ""]
    out += [f"* `{key}`: {meaning}" for key, meaning in CAPABILITY_KEYS.items()]
    out += ["", "| function | capability | Cedar action | effectful |", "| --- | --- | --- | --- |"]
    out += [f"| `{f.name}` | `{f.capability}` | `{f.action}` (group `{f.family}`) | "
            f"{'yes' if f.effectful else 'no'} |" for f in HOST_FUNCTIONS]
    for f in HOST_FUNCTIONS:
        args, reply = f.example
        out += [
            "", f"## `{f.name}`", "", f.summary, "",
            f"* capability: `{f.capability}`; Cedar action `{f.action}`",
            f"* effect: {f.effect}",
            f"* decision durable before the effect: {'yes' if f.effectful else 'no'}",
            f"* error codes: {', '.join(f'`{e}`' for e in f.errors)}",
            "", "Arguments:", "", "```json", _js(f.args_schema), "```",
            "", "Reply:", "", "```json", _js(f.reply_schema), "```",
            "", "Example:", "", "```json", json.dumps(args, sort_keys=True), "```",
            "", "```json", json.dumps(reply, sort_keys=True), "```",
        ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover - exercised by the docs test through markdown()
    if sys.argv[1:] != ["--markdown"]:
        print("usage: python -m vak.host.catalog --markdown", file=sys.stderr)
        raise SystemExit(2)
    sys.stdout.write(markdown())
