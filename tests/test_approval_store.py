"""The approval store and statement parsers: hostile content is a typed error, never
an approval and never another exception (Hypothesis), and a stored answer is
consumed once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.approvals.answer import Answer, sign_answer
from vak.approvals.store import ApprovalStore
from vak.audit.approval import call_binding, statement_problem
from vak.errors import ApprovalError
from vak.identity.keys import SigningKey

KEY = SigningKey(b"\x05" * 32)
FIELDS = {"binding": call_binding("notes", "sha256:00", "fs_write", "hmac-sha256:00", "s"),
          "skill": "notes", "manifest_digest": "sha256:00", "function": "fs_write",
          "resource": "/workspace/x", "summary": {"size": 3}, "session": "s"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(statement=json_values, signature=json_values)
def test_statement_problem_never_raises(statement: object, signature: object) -> None:
    assert statement_problem(statement, signature) is not None


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300) | json_values.map(orjson.dumps))
def test_hostile_store_files_are_typed_errors(tmp_path_factory: pytest.TempPathFactory,
                                              data: bytes) -> None:
    store = ApprovalStore(tmp_path_factory.mktemp("s"))
    store.dir.mkdir(exist_ok=True)
    aid = "a" * 32
    store.path(aid).write_bytes(data)
    with pytest.raises(ApprovalError):
        store.get(aid)


@settings(max_examples=100, deadline=None)
@given(mutation=st.sampled_from(["v", "approval", "binding", "verdict", "key_id", "issued",
                                 "not_after"]), value=json_values)
def test_a_mutated_valid_file_is_refused_or_still_exact(
        tmp_path_factory: pytest.TempPathFactory, mutation: str, value: object) -> None:
    store = ApprovalStore(tmp_path_factory.mktemp("s"))
    req, _ = store.open_request(FIELDS, lambda r: True, "i1")
    answer = sign_answer(req.id, req.binding, True, KEY, timedelta(minutes=1))
    store.answer(req.id, answer)
    doc = orjson.loads(store.path(req.id).read_bytes())
    doc["answer"]["statement"][mutation] = value
    store.path(req.id).write_bytes(orjson.dumps(doc))
    try:
        rec = store.get(req.id)
    except ApprovalError:
        return
    assert rec.answer is not None and rec.answer.statement[mutation] == value


def test_path_never_leaves_the_store(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    for bad in ["../x", "a" * 31, "A" * 32, "a" * 32 + "/", "", "a" * 33]:
        with pytest.raises(ApprovalError):
            store.path(bad)


def test_open_request_reuses_pending_and_consumes_once(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    req, answer = store.open_request(FIELDS, lambda r: True, "i1")
    assert answer is None
    assert store.open_request(FIELDS, lambda r: True, "i2")[0].id == req.id  # no pile-up
    signed = sign_answer(req.id, req.binding, True, KEY, timedelta(minutes=1))
    store.answer(req.id, signed)
    with pytest.raises(ApprovalError):
        store.answer(req.id, signed)  # answered once
    got, used = store.open_request(FIELDS, lambda r: True, "i3")
    assert (got.id, used) == (req.id, signed)
    assert store.get(req.id).state == "used"
    again, none = store.open_request(FIELDS, lambda r: True, "i4")
    assert none is None and again.id != req.id
    assert isinstance(Answer.from_json(signed.to_json(), "x"), Answer)


def test_stale_records_are_pruned(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    old, _ = store.open_request(FIELDS, lambda r: True, "i1")
    doc = orjson.loads(store.path(old.id).read_bytes())
    doc["request"]["created"] = "2001-01-01T00:00:00Z"  # pending for years
    store.path(old.id).write_bytes(orjson.dumps(doc))
    fresh, _ = store.open_request(FIELDS, lambda r: True, "i2")
    assert fresh.id != old.id and not store.path(old.id).exists()
    assert [r.request.id for r in store.records()] == [fresh.id]
