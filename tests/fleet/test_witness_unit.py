"""The witness's decisions (no HTTP), cosignatures and note parsing, on real logs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.audit.checkpoint import Checkpoint, sign_checkpoint
from vak.audit.keys import load_or_create_private_key
from vak.audit.merkle import MerkleTree
from vak.errors import KeyFileError, WitnessError
from vak.witness.client import request_body
from vak.witness.cosignature import (
    cosign,
    parse_cosignature,
    parse_witness_key,
    verify_cosignatures,
    witness_key_of,
)
from vak.witness.note import log_checkpoint, split_note
from vak.witness.server import Witness

from .helpers import keys_of, open_log

NAME = "witness.test/w1"


class _Log:
    """A real log plus the tree a client builds proofs from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = open_log(root, "k1")
        self.keys = keys_of(root, "k1")

    def checkpoint(self, n: int = 5) -> tuple[str, MerkleTree]:
        for i in range(n):
            self.log.append("heartbeat", {"i": i})
        note = self.log.checkpoint().note
        tree = MerkleTree()
        from hashlib import sha256
        for raw in self.log.path.read_bytes().splitlines():
            tree.append(sha256(b"\x00" + raw).digest())
        return note, tree


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    log = _Log(tmp_path)
    key = Ed25519PrivateKey.generate()
    w = Witness(NAME, key, log.keys, tmp_path / "w.db", clock=lambda: 1_700_000_000)
    yield log, w, witness_key_of(NAME, key)
    w.close()
    log.log.close()


def _size(note: str) -> int:
    return log_checkpoint(note)[0].checkpoint.size


def test_first_checkpoint_then_a_consistent_one_is_cosigned(setup: Any) -> None:
    log, w, wkey = setup
    note, _ = log.checkpoint()
    r = w.add_checkpoint(request_body(note, 0, []))
    assert r.status == 200
    body = log_checkpoint(note)[0].checkpoint.body()
    assert verify_cosignatures(body, [r.body.decode()], [wkey], 1) == [wkey]
    note2, tree = log.checkpoint()
    proof = tree.consistency_proof(_size(note), _size(note2))
    assert w.add_checkpoint(request_body(note2, _size(note), proof)).status == 200
    assert w.latest(log.log.origin)[0] == _size(note2)


def test_stale_old_size_is_409_with_the_known_size(setup: Any) -> None:
    log, w, _ = setup
    note, _ = log.checkpoint()
    w.add_checkpoint(request_body(note, 0, []))
    note2, _ = log.checkpoint()
    r = w.add_checkpoint(request_body(note2, 0, []))
    assert (r.status, r.body, r.content_type) == (409, f"{_size(note)}\n".encode(),
                                                 "text/x.tlog.size")


def test_rollback_and_bad_proof_are_refused(setup: Any) -> None:
    log, w, _ = setup
    note, tree1 = log.checkpoint()
    note2, tree = log.checkpoint()
    s1, s2 = _size(note), _size(note2)
    assert w.add_checkpoint(request_body(note2, 0, [])).status == 200
    # an older checkpoint: old size above its size (400) or not the stored size (409)
    assert w.add_checkpoint(request_body(note, s2, [])).status == 400
    assert w.add_checkpoint(request_body(note, 0, [])).status == 409
    note3, tree = log.checkpoint()
    proof = tree.consistency_proof(s2, _size(note3))
    bad = [bytes(32), *proof[1:]]
    assert w.add_checkpoint(request_body(note3, s2, bad)).status == 422
    assert w.latest(log.log.origin)[0] == s2
    del s1, tree1


def test_a_forked_history_signed_by_the_log_key_is_refused(setup: Any) -> None:
    log, w, _ = setup
    note, _ = log.checkpoint()
    assert w.add_checkpoint(request_body(note, 0, [])).status == 200
    size = _size(note)
    # the key holder signs another tree that starts differently
    fork = MerkleTree()
    for i in range(size + 3):
        fork.append(bytes([i % 256]) * 32)
    key = load_or_create_private_key(log.root / "k1" / "log.key")
    forged = sign_checkpoint(Checkpoint(log.log.origin, size + 3, fork.root(), "t"), key).note
    r = w.add_checkpoint(request_body(forged, size, fork.consistency_proof(size, size + 3)))
    assert r.status == 422
    same_size = sign_checkpoint(Checkpoint(log.log.origin, size, fork.root(size), "t"), key).note
    assert w.add_checkpoint(request_body(same_size, size, [])).status == 409


@pytest.mark.parametrize(("mutate", "status"), [
    (lambda b: b.replace(b"old ", b"old  ", 1), 400),
    (lambda b: b.replace(b"old 0", b"old 01", 1), 400),
    (lambda b: b.replace(b"\n\n", b"\n", 1), 400),
    (lambda b: b"old 0\n" + b"AAAA\n" + b"\n" + b.split(b"\n\n", 1)[1], 400),
    (lambda b: b.replace(b"test.vak/k1\n", b"test.vak/other\n", 1), 404),
    (lambda b: b[:-20] + b"AAAAAAAAAAAAAAAAAAA\n", 403),
    (lambda b: b"\xff" + b, 400),
], ids=["spacing", "leading-zero", "no-blank", "short-hash", "unknown-origin", "bad-sig",
        "not-utf8"])
def test_bad_requests_get_the_spec_status(setup: Any, mutate: Any, status: int) -> None:
    log, w, _ = setup
    note, _ = log.checkpoint()
    assert w.add_checkpoint(mutate(request_body(note, 0, []))).status == status
    assert w.latest(log.log.origin) is None


def test_an_old_size_zero_request_with_a_proof_is_400(setup: Any) -> None:
    log, w, _ = setup
    note, _ = log.checkpoint()
    assert w.add_checkpoint(request_body(note, 0, [bytes(32)])).status == 400


def test_witness_key_round_trip_and_tamper() -> None:
    key = Ed25519PrivateKey.generate()
    wkey = witness_key_of(NAME, key)
    assert parse_witness_key(wkey.vkey) == wkey
    with pytest.raises(KeyFileError):
        parse_witness_key(wkey.vkey.replace("+", "+0", 1))
    body = "o\n1\n" + "A" * 43 + "=\n"
    line = cosign(NAME, key, body, 42)
    cs = parse_cosignature(line)
    assert cs is not None and cs.timestamp == 42 and cs.line == line
    with pytest.raises(WitnessError):
        verify_cosignatures(body.replace("1", "2"), [line], [wkey], 1)
    with pytest.raises(WitnessError, match="2 witness"):
        verify_cosignatures(body, [line], [wkey], 2)
    other = witness_key_of("witness.test/w2", Ed25519PrivateKey.generate())
    assert verify_cosignatures(body, [line], [other], 0) == []  # unknown keys are ignored


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_note_parsers_fail_only_with_witness_errors(text: str) -> None:
    for parse in (split_note, log_checkpoint):
        with contextlib.suppress(WitnessError):
            parse(text)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 75), st.integers(1, 255))
def test_any_changed_byte_of_a_cosignature_fails(pos: int, flip: int) -> None:
    import base64
    key = Ed25519PrivateKey.generate()
    body = "o\n7\n" + "B" * 43 + "=\n"
    line = cosign(NAME, key, body, 1_700_000_000)
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[pos] ^= flip
    tampered = f"\u2014 {NAME} {base64.b64encode(bytes(raw)).decode()}\n"
    wkey = witness_key_of(NAME, key)
    with pytest.raises(WitnessError):
        verify_cosignatures(body, [tampered], [wkey], 1)
