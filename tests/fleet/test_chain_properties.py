"""Properties of the shared chain checks and the witness's request parser (Hypothesis)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vak.fleet.chain import ChainProblem, ChainState, Frontier, check_line
from vak.witness.server import Witness

from .helpers import keys_of, write_log


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    log, _ = write_log(tmp_path_factory.mktemp("chain"), "k1", 12, denials=2)
    return log.read_bytes().split(b"\n")[:-1]


def _root(lines: list[bytes]) -> bytes:
    state = ChainState.empty("test.vak/k1")
    for raw in lines:
        check_line(state, raw)
    return state.frontier.root()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_changed_byte_is_refused_or_changes_the_root(lines: list[bytes],
                                                         data: st.DataObject) -> None:
    good = _root(lines)
    i = data.draw(st.integers(0, len(lines) - 1))
    pos = data.draw(st.integers(0, len(lines[i]) - 1))
    flip = data.draw(st.integers(1, 255))
    edited = bytearray(lines[i])
    edited[pos] ^= flip
    tampered = [*lines[:i], bytes(edited), *lines[i + 1:]]
    try:
        root = _root(tampered)
    except ChainProblem:
        return  # refused by the line checks
    assert root != good  # else a signed checkpoint would not match


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40))
def test_frontier_round_trips_through_bytes(n: int) -> None:
    f = Frontier()
    for i in range(n):
        f.append(bytes([i]) * 32)
    back = Frontier.from_bytes(f.size, f.to_bytes())
    assert back.root() == f.root()
    back.append(b"\x01" * 32)
    f.append(b"\x01" * 32)
    assert back.root() == f.root()


@pytest.fixture(scope="module")
def witness(tmp_path_factory: pytest.TempPathFactory) -> Witness:
    root = tmp_path_factory.mktemp("wit")
    write_log(root, "k1", 1)
    return Witness("witness.test/w1", Ed25519PrivateKey.generate(), keys_of(root, "k1"),
                   root / "w.db")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=400),
                 st.text(max_size=300).map(lambda t: ("old 0\n\n" + t).encode()),
                 st.lists(st.sampled_from(["old 0", "old 5", "", "AAAA", "test.vak/k1", "1",
                                           "\u2014 test.vak/k1 AAAA", "x" * 44]),
                          max_size=12).map(lambda ls: ("\n".join(ls) + "\n").encode())))
def test_any_request_body_gets_a_4xx_never_an_exception(witness: Witness, body: bytes) -> None:
    r = witness.add_checkpoint(body)
    assert 400 <= r.status < 500
    assert witness.latest("test.vak/k1") is None
