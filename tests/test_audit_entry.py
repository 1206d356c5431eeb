"""Entry encoding: canonical bytes match the rfc8785 oracle; kinds and fields are enforced."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.audit.entry import (
    KINDS,
    check_fields,
    encode_checked,
    encode_entry,
    entry_leaf_hash,
    has_float,
    rfc3339_now,
)
from vak.audit.merkle import leaf_hash
from vak.canonical import MAX_SAFE_INT, CanonicalError

_scalars = st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | st.text()
_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=4)
                       | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
_HEADER = {"v": 1, "origin": "o", "seq": 1, "time": "t", "kind": "heartbeat", "prev": "0" * 64}


@settings(max_examples=150)
@given(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in _HEADER), _values,
                       max_size=6))
def test_lines_equal_rfc8785(fields: dict) -> None:
    line = encode_checked(fields, dict(_HEADER))
    assert line == rfc8785.dumps({**_HEADER, **fields}) + b"\n"
    assert line == encode_entry({**_HEADER, **fields})
    assert entry_leaf_hash(line) == leaf_hash(line[:-1])


@pytest.mark.parametrize("bad", [{"x": 1.0}, {"x": [{"y": 2.5}]}, {"x": 2**53}, {"x": b"b"},
                                 {"x": {1: "a"}}], ids=["float", "nested-float", "big-int",
                                                         "bytes", "int-key"])
def test_values_outside_profile_are_refused(bad: dict) -> None:
    with pytest.raises(CanonicalError):
        encode_checked(bad, dict(_HEADER))


def test_has_float() -> None:
    assert has_float({"a": [1, {"b": 0.5}]}) and not has_float({"a": [1, {"b": "0.5"}]})


def test_check_fields() -> None:
    for kind, required in KINDS.items():
        check_fields(kind, dict.fromkeys(required, "x"))
        for name in required:
            with pytest.raises(CanonicalError, match=name):
                check_fields(kind, {k: "x" for k in required if k != name})
    with pytest.raises(CanonicalError, match="unknown"):
        check_fields("nope", {})
    with pytest.raises(CanonicalError, match="set by the log"):
        check_fields("heartbeat", {"prev": "x"})


def test_time_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rfc3339_now())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.0, 1e300, 5e-324],
                         ids=["nan", "inf", "neg-zero", "huge", "tiny"])
def test_no_float_is_ever_encoded(bad: float) -> None:
    # orjson writes NaN/inf as null and would write the others as numbers: all refused
    for fields in ({"x": bad}, {"x": [1, bad]}, {"x": {"y": (bad,)}}):
        with pytest.raises(CanonicalError):
            encode_checked(fields, dict(_HEADER))


def test_exotic_types_are_refused_not_silently_encoded() -> None:
    import dataclasses
    import datetime
    import uuid

    @dataclasses.dataclass
    class D:
        z: int = 1
        a: float = 0.5

    for value in (D(), datetime.datetime(2026, 1, 1), uuid.uuid4(), {1, 2}, b"x"):
        with pytest.raises(CanonicalError):
            encode_checked({"x": value}, dict(_HEADER))


@settings(max_examples=100)
@given(st.recursive(_scalars | st.floats(allow_nan=True, allow_infinity=True),
                    lambda c: st.lists(c, max_size=3)
                    | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=8))
def test_encoded_lines_never_hold_a_float(value: object) -> None:
    try:
        line = encode_checked({"x": value}, dict(_HEADER))
    except CanonicalError:
        assert has_float({"x": value})
        return
    assert not has_float(orjson.loads(line)) and not has_float({"x": value})
    assert line == rfc8785.dumps({**_HEADER, "x": value}) + b"\n"


@settings(max_examples=150)
@given(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in _HEADER), _values,
                       max_size=6), st.data())
def test_sealed_values_encode_exactly_as_plain_ones(fields: dict, data: st.DataObject) -> None:
    from vak.audit.entry import Sealed

    sealed = {k: Sealed(v) if data.draw(st.booleans()) else v for k, v in fields.items()}
    line = encode_checked(sealed, dict(_HEADER))
    assert line == rfc8785.dumps({**_HEADER, **fields}) + b"\n"


def test_sealed_refuses_what_the_profile_refuses_and_keeps_a_private_copy() -> None:
    from vak.audit.entry import MAX_DEPTH, Sealed

    for bad in (1.5, {"x": [float("nan")]}, 2**53, {1: "a"}, b"x"):
        with pytest.raises(CanonicalError):
            Sealed(bad)
    deep: object = "leaf"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    with pytest.raises(CanonicalError):
        Sealed(deep)
    original = {"id": "calc", "tags": ["a"]}
    sealed = Sealed(original)
    original["tags"].append(0.5)  # the caller's object changes; the seal does not
    line = encode_checked({"skill": sealed}, dict(_HEADER))
    assert b'"tags":["a"]' in line and sealed.value == {"id": "calc", "tags": ["a"]}


def test_sealed_depth_counts_where_it_is_placed() -> None:
    from vak.audit.entry import MAX_DEPTH, Sealed

    inner: object = "leaf"
    for _ in range(MAX_DEPTH - 1):  # fits at the top level of an entry: 1 + 31 levels
        inner = [inner]
    line = encode_checked({"x": Sealed(inner)}, dict(_HEADER))
    assert line.count(b"[") == MAX_DEPTH - 1
    with pytest.raises(CanonicalError):  # one level lower it is one too deep
        encode_checked({"x": [Sealed(inner)]}, dict(_HEADER))


def test_the_log_takes_sealed_values_and_verifies(tmp_path: Path) -> None:
    from vak.audit.entry import Sealed
    from vak.audit.keys import load_trusted_keys
    from vak.audit.log import AuditLog
    from vak.audit.verify import verify_log

    log = AuditLog.open(tmp_path / "vak.log", key_path=tmp_path / "log.key", origin="t/o",
                        fsync="batched:5")
    assert AuditLog.accepts_sealed is True
    skill = {"id": "calc", "version": "1.0.0", "manifest_digest": "sha256:" + "a" * 64,
             "signer": "ed25519:x"}
    a = log.append("invocation_started", {"invocation": "i1", "skill": skill})
    b = log.append("invocation_started", {"invocation": "i1", "skill": Sealed(skill)})
    with pytest.raises(CanonicalError):
        log.append("heartbeat", {"x": [Sealed({"y": 1})] * 1, "z": 1.5})
    log.close()
    lines = (tmp_path / "vak.log").read_bytes().splitlines()
    plain, sealed = (orjson.loads(lines[r.seq]) for r in (a, b))
    for e in (plain, sealed):
        del e["seq"], e["prev"], e["time"]
    assert plain == sealed
    assert int(verify_log(tmp_path / "vak.log", load_trusted_keys(log.public_key_path)).result) == 0
