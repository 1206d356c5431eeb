"""The framed protocol between the kernel and an OS-sandboxed worker.

One frame on the wire::

    u32 big-endian header length H | u32 big-endian body length B
    H bytes: header, a JSON object (sorted keys) with a "type" and typed fields
    B bytes: raw body (module bytes, input/output JSON, host-call arguments)

Bulk data travels raw in the body so it is never re-encoded. Both lengths are
capped before anything is allocated; a header that is not a JSON object of a
known type with fields of the right types is a :class:`FrameError`. Since the
parent treats the worker as hostile, every frame it reads from one is checked
here, and any failure means "kill and replace the worker".

Conversation (P = parent, W = worker)::

    P→W init        {digest, config, require, host_functions, cpu_seconds, precompiled?}
                                      body: module bytes (precompiled: a compiled component)
    W→P ready       {barriers}                          (or W→P fatal {error})
    P→W invoke      {id, export, limits}                body: input JSON
      W→P host_call   {id, function}                    body: argument JSON
       or host_refuse {id, function, policy_id, reason} (engine refused the span)
      P→W host_reply  {id, ok, error?}                  body: result JSON
    W→P result      {id, fuel_used, duration_ns, host_calls}   body: output JSON
     or W→P error   {id, error: {class, message, details}}

Example::

    >>> frame = encode_frame("host_call", {"id": 1, "function": "log"}, b"{}")
    >>> decode_frame(frame).header["function"]
    'log'
"""

from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from vak.errors import WorkerCrashedError

__all__ = [
    "DEFAULT_MAX_BODY",
    "MAX_HEADER_BYTES",
    "Frame",
    "FrameError",
    "FrameReader",
    "FrameTimeout",
    "decode_frame",
    "encode_frame",
    "write_all",
]

MAX_HEADER_BYTES = 64 << 10
DEFAULT_MAX_BODY = 64 << 20
_PREFIX = struct.Struct(">II")

_INT = (int,)
#: required header fields per frame type (``error`` of host_reply is optional)
_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "init": {"digest": (str,), "config": (dict,), "require": (bool,),
             "host_functions": (list,), "cpu_seconds": _INT},
    "ready": {"barriers": (dict,)},
    "fatal": {"error": (dict,)},
    "invoke": {"id": _INT, "export": (str,), "limits": (dict,)},
    "host_call": {"id": _INT, "function": (str,)},
    "host_refuse": {"id": _INT, "function": (str,), "policy_id": (str,), "reason": (str,)},
    "host_reply": {"id": _INT, "ok": (bool,)},
    "result": {"id": _INT, "fuel_used": _INT, "duration_ns": _INT, "host_calls": _INT},
    "error": {"id": _INT, "error": (dict,)},
}


class FrameError(WorkerCrashedError):
    """A frame is malformed, oversized, of an unknown type, or the pipe closed."""

    code = "worker_protocol"


class FrameTimeout(WorkerCrashedError):
    """The peer sent no complete frame before the deadline (a hung worker)."""

    code = "worker_hung"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame; ``header`` always has a valid ``type``."""

    header: Mapping[str, Any]
    body: bytes

    @property
    def kind(self) -> str:
        return str(self.header["type"])


def encode_frame(kind: str, fields: Mapping[str, Any], body: bytes = b"") -> bytes:
    """Serialise one frame.

    Raises:
        FrameError: unknown type, missing/mistyped field, or header too large.
    """
    header = {"type": kind, **fields}
    _validate(header)
    raw = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    if len(raw) > MAX_HEADER_BYTES:
        raise FrameError(f"{kind} frame header is {len(raw)} bytes, over {MAX_HEADER_BYTES}")
    return _PREFIX.pack(len(raw), len(body)) + raw + body


def _validate(header: Any) -> None:
    if not isinstance(header, dict):
        raise FrameError("frame header is not a JSON object")
    kind = header.get("type")
    schema = _SCHEMA.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise FrameError(f"unknown frame type {kind!r}")
    for name, types in schema.items():
        value = header.get(name)
        # bool is an int subclass; an id or a counter must be a real int
        if not isinstance(value, types) or (types is _INT and isinstance(value, bool)):
            raise FrameError(f"{kind} frame: field {name!r} missing or of the wrong type")
        if isinstance(value, int) and types is _INT and not 0 <= value < 1 << 63:
            raise FrameError(f"{kind} frame: field {name!r} out of range")


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameError("frame header is not valid JSON") from None
    _validate(header)
    return header  # type: ignore[no-any-return]


def _lengths(prefix: bytes, max_body: int) -> tuple[int, int]:
    hlen, blen = _PREFIX.unpack(prefix)
    if hlen == 0 or hlen > MAX_HEADER_BYTES:
        raise FrameError(f"frame header length {hlen} outside 1..{MAX_HEADER_BYTES}")
    if blen > max_body:
        raise FrameError(f"frame body length {blen} over the limit {max_body}")
    return hlen, blen


def decode_frame(data: bytes, max_body: int = DEFAULT_MAX_BODY) -> Frame:
    """Decode exactly one whole frame from ``data``.

    Raises:
        FrameError: truncated, trailing bytes, oversized or malformed.
    """
    if len(data) < _PREFIX.size:
        raise FrameError("truncated frame prefix")
    hlen, blen = _lengths(data[: _PREFIX.size], max_body)
    if len(data) != _PREFIX.size + hlen + blen:
        raise FrameError("frame length does not match its prefix")
    header = _parse_header(data[_PREFIX.size : _PREFIX.size + hlen])
    return Frame(header, bytes(data[_PREFIX.size + hlen :]))


class FrameReader:
    """Reads frames from a pipe fd, with an optional absolute deadline.

    Not thread-safe; one reader per fd. Works on blocking and non-blocking fds
    (it polls before each read).
    """

    def __init__(self, fd: int, max_body: int = DEFAULT_MAX_BODY) -> None:
        self._fd = fd
        #: may be lowered per call (e.g. to the call's output limit)
        self.max_body = max_body
        self._buf = bytearray()

    def read(self, deadline: float | None = None) -> Frame:
        """The next frame; ``deadline`` is a ``time.monotonic()`` instant.

        Raises:
            FrameError: the peer closed the pipe or sent a malformed frame.
            FrameTimeout: no complete frame before ``deadline``.
        """
        self._fill(_PREFIX.size, deadline)
        hlen, blen = _lengths(bytes(self._buf[: _PREFIX.size]), self.max_body)
        total = _PREFIX.size + hlen + blen
        self._fill(total, deadline)
        header = _parse_header(bytes(self._buf[_PREFIX.size : _PREFIX.size + hlen]))
        body = bytes(self._buf[_PREFIX.size + hlen : total])
        del self._buf[:total]
        return Frame(header, body)

    def _fill(self, need: int, deadline: float | None) -> None:
        while len(self._buf) < need:
            _wait(self._fd, select.POLLIN, deadline)
            try:
                chunk = os.read(self._fd, max(need - len(self._buf), 1 << 16))
            except BlockingIOError:
                continue
            except OSError as exc:
                raise FrameError(f"worker pipe read failed: {exc}") from None
            if not chunk:
                raise FrameError("worker pipe closed (the peer exited)")
            self._buf += chunk


def _wait(fd: int, event: int, deadline: float | None) -> None:
    poller = select.poll()
    poller.register(fd, event)
    while True:
        if deadline is None:
            timeout_ms = None
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrameTimeout("the worker did not answer before the deadline")
            timeout_ms = max(1, int(remaining * 1000) + 1)
        if poller.poll(timeout_ms):
            return


def write_all(fd: int, data: bytes, deadline: float | None = None) -> None:
    """Write every byte of ``data``; a peer that stops reading hits the deadline.

    Raises:
        FrameError: the pipe is closed.
        FrameTimeout: the peer did not drain the pipe before ``deadline``.
    """
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            _wait(fd, select.POLLOUT, deadline)
            continue
        except OSError as exc:  # EPIPE: the worker is gone
            raise FrameError(f"worker pipe write failed: {exc}") from None
        view = view[n:]
