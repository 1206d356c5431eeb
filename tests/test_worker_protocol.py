"""Tests for vak.sandbox.protocol: round trips and a table of malformed frames."""

from __future__ import annotations

import contextlib
import os
import struct
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import WorkerCrashedError
from vak.sandbox.protocol import (
    MAX_HEADER_BYTES,
    FrameError,
    FrameReader,
    FrameTimeout,
    decode_frame,
    encode_frame,
    write_all,
)


def raw(
    header: object, body: bytes = b"", *, hlen: int | None = None, blen: int | None = None
) -> bytes:
    h = header if isinstance(header, bytes) else orjson.dumps(header)
    hl = len(h) if hlen is None else hlen
    bl = len(body) if blen is None else blen
    return struct.pack(">II", hl, bl) + h + body


@settings(max_examples=100, deadline=None)
@given(
    call_id=st.integers(0, (1 << 63) - 1),
    function=st.text(max_size=40),
    body=st.binary(max_size=2048),
)
def test_round_trip(call_id: int, function: str, body: bytes) -> None:
    data = encode_frame("host_call", {"id": call_id, "function": function}, body)
    frame = decode_frame(data)
    assert frame.kind == "host_call"
    assert frame.header["id"] == call_id and frame.header["function"] == function
    assert frame.body == body


BAD = [
    ("unknown_type", raw({"type": "shell", "id": 1})),
    ("no_type", raw({"id": 1})),
    ("not_object", raw([1, 2])),
    ("not_json", raw(b"{nope")),
    ("invalid_utf8", raw(b'{"type":"\xff"}')),
    ("bool_id", raw({"type": "host_call", "id": True, "function": "log"})),
    ("negative_id", raw({"type": "host_call", "id": -1, "function": "log"})),
    ("huge_id", raw(b"{\"type\":\"host_call\",\"id\":99999999999999999999,\"function\":\"x\"}")),
    ("string_counter", raw({"type": "result", "id": 1, "fuel_used": "1", "duration_ns": 1,
                            "host_calls": 0})),
    ("missing_field", raw({"type": "invoke", "id": 1, "export": "x"})),
    ("refuse_without_reason", raw({"type": "host_refuse", "id": 1, "function": "log",
                                   "policy_id": "vak.invalid-args"})),
    ("refuse_reason_not_text", raw({"type": "host_refuse", "id": 1, "function": "log",
                                    "policy_id": "vak.invalid-args", "reason": 7})),
    ("init_without_host_functions", raw({"type": "init", "digest": "d", "config": {},
                                         "require": False, "cpu_seconds": 1})),
    ("zero_header", raw(b"", hlen=0)),
    ("header_too_long", raw({"type": "ready"}, hlen=MAX_HEADER_BYTES + 1)),
    ("body_over_limit", raw({"type": "ready", "barriers": {}}, blen=(64 << 20) + 1)),
    ("truncated", raw({"type": "ready", "barriers": {}})[:-3]),
    ("trailing", raw({"type": "ready", "barriers": {}}) + b"x"),
    ("short_prefix", b"\x00\x00"),
]


@pytest.mark.parametrize("data", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed_frames_raise_frame_error(data: bytes) -> None:
    with pytest.raises(FrameError) as info:
        decode_frame(data)
    assert isinstance(info.value, WorkerCrashedError)


def test_encode_refuses_bad_fields() -> None:
    with pytest.raises(FrameError):
        encode_frame("result", {"id": 1})
    with pytest.raises(FrameError):
        encode_frame("nope", {})


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data)


def test_reader_reads_frames_split_across_writes() -> None:
    r, w = os.pipe()
    try:
        frames = encode_frame("host_reply", {"id": 3, "ok": True}, b"[1]") * 2
        reader = FrameReader(r)
        os.write(w, frames[:5])
        os.write(w, frames[5:])
        assert reader.read(time.monotonic() + 5).body == b"[1]"
        assert reader.read(time.monotonic() + 5).header["id"] == 3
    finally:
        os.close(r)
        os.close(w)


def test_reader_deadline_and_eof() -> None:
    r, w = os.pipe()
    reader = FrameReader(r)
    with pytest.raises(FrameTimeout):
        reader.read(time.monotonic() + 0.05)
    os.close(w)
    with pytest.raises(FrameError, match="closed"):
        reader.read(time.monotonic() + 5)
    os.close(r)


def test_reader_refuses_oversized_body_before_reading_it() -> None:
    r, w = os.pipe()
    os.write(w, raw({"type": "ready", "barriers": {}}, blen=1 << 20))
    with pytest.raises(FrameError, match="over the limit"):
        FrameReader(r, max_body=1024).read(time.monotonic() + 5)
    os.close(r)
    os.close(w)


def test_write_all_times_out_when_peer_stops_reading() -> None:
    r, w = os.pipe()
    os.set_blocking(w, False)
    with pytest.raises(FrameTimeout):
        write_all(w, b"x" * (4 << 20), time.monotonic() + 0.1)
    os.close(r)
    os.close(w)


@settings(max_examples=50, deadline=None)
@given(call_id=st.integers(0, (1 << 63) - 1), reason=st.text(max_size=200))
def test_refusal_round_trip(call_id: int, reason: str) -> None:
    fields = {"id": call_id, "function": "log", "policy_id": "vak.invalid-args",
              "reason": reason}
    frame = decode_frame(encode_frame("host_refuse", fields))
    assert frame.kind == "host_refuse" and frame.header["reason"] == reason
