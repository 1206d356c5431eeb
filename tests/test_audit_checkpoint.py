"""Signed notes: round trip, tampering, key trust, malformed notes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.audit.checkpoint import (
    Checkpoint,
    CheckpointSignatureError,
    UntrustedKeyError,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
)
from vak.audit.keys import generate_private_key, parse_verifier_key, public_bytes, verifier_key

KEY = generate_private_key()
TRUSTED = parse_verifier_key(verifier_key("o.vak/k", public_bytes(KEY)))
CP = Checkpoint("o.vak/k", 7, bytes(range(32)), "2026-01-01T00:00:00.000000Z")


def test_round_trip() -> None:
    signed = sign_checkpoint(CP, KEY)
    again = parse_note(signed.note)
    assert again == signed
    assert verify_checkpoint(again, [TRUSTED]) == TRUSTED
    assert signed.note.startswith("o.vak/k\n7\n") and "\n\n\u2014 o.vak/k " in signed.note


@settings(max_examples=100)
@given(st.data())
def test_any_changed_character_is_rejected(data: st.DataObject) -> None:
    note = sign_checkpoint(CP, KEY).note
    i = data.draw(st.integers(0, len(note) - 1))
    c = data.draw(st.characters(codec="utf-8").filter(lambda c: c != note[i]))
    tampered = note[:i] + c + note[i + 1:]
    with pytest.raises((CheckpointSignatureError, UntrustedKeyError)):
        verify_checkpoint(parse_note(tampered), [TRUSTED])


def test_untrusted_revoked_expired() -> None:
    signed = sign_checkpoint(CP, KEY)
    other = parse_verifier_key(verifier_key("o.vak/k", public_bytes(generate_private_key())))
    with pytest.raises(UntrustedKeyError):
        verify_checkpoint(signed, [other])
    with pytest.raises(UntrustedKeyError, match="revoked"):
        verify_checkpoint(signed, [parse_verifier_key(TRUSTED.vkey + " revoked")])
    with pytest.raises(UntrustedKeyError, match="expired"):
        verify_checkpoint(signed, [parse_verifier_key(TRUSTED.vkey + " not-after=2000-01-01")])


@pytest.mark.parametrize("note", ["", "o\n1\n", "o\nx\nAAAA\n\n\u2014 o AAAA\n",
                                  "o\n01\n" + "A" * 43 + "=\n\n\u2014 o AAAA\n"],
                         ids=["empty", "no-signature", "bad-size", "leading-zero"])
def test_malformed_notes(note: str) -> None:
    with pytest.raises(CheckpointSignatureError):
        parse_note(note)
