"""vak.text: the one escaping rule for untrusted text (guest strings, file values, log fields)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vak.text import escape, json_safe, printable, terminal

#: characters that forge lines, move the cursor, reorder or hide text
HOSTILE = ["\n", "\r", "\x1b", "\x07", "\x00", "\x7f", "\x85", "\u00ad", "\u061c", "\u200b",
           "\u2028", "\u2029", "\u202e", "\u2066", "\ufeff", "\U000e0041", "\udcff", "\uf8ff"]

ROWS = [
    ("plain", "abc", {}, "abc"),
    ("unicode-printable", "schl\u00fcssel \u00e9", {}, "schl\u00fcssel \u00e9"),
    ("newline-hex", "a\nb", {}, "a\\x0ab"),
    ("newline-short", "a\nb", {"short": True}, "a\\nb"),
    ("newline-kept", "a\nb\x1b", {"keep_newlines": True}, "a\nb\\x1b"),
    ("backslash-doubled", "a\\x1b", {}, "a\\\\x1b"),
    ("backslash-kept", "a\\x1b", {"backslash": False}, "a\\x1b"),
    ("bmp", "\u202e", {}, "\\u202e"),
    ("astral", "\U000e0041", {}, "\\U000e0041"),
    ("tab-short", "\t", {"short": True}, "\\t"),
    ("cr-with-newlines-kept", "x\r\ny", {"keep_newlines": True, "short": True}, "x\\r\ny"),
]


@pytest.mark.parametrize(("text", "opts", "want"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_escape_table(text: str, opts: dict[str, bool], want: str) -> None:
    assert escape(text, **opts) == want


@pytest.mark.parametrize("ch", HOSTILE, ids=[f"U+{ord(c):04X}" for c in HOSTILE])
def test_every_hostile_character_is_escaped_by_every_profile(ch: str) -> None:
    text = f"a{ch}b"
    for out in (escape(text), printable(text), terminal(text, keep_newlines=False)):
        assert ch not in out and out.isprintable(), repr(out)
    kept = terminal(text)
    assert (ch in kept) == (ch == "\n")


@given(st.text())
def test_output_is_printable_but_for_kept_newlines(text: str) -> None:
    assert escape(text).isprintable()
    assert all(line.isprintable() for line in escape(text, keep_newlines=True).split("\n"))
    assert escape(text, keep_newlines=True).count("\n") == text.count("\n")


@given(st.text(), st.text())
def test_escape_with_backslashes_doubled_is_injective(a: str, b: str) -> None:
    assert (escape(a) == escape(b)) == (a == b)


@given(st.text())
def test_printable_text_is_left_alone(text: str) -> None:
    clean = "".join(ch for ch in text if ch.isprintable())
    assert escape(clean, backslash=False) == clean
    assert printable(clean) == clean


@given(st.recursive(st.none() | st.booleans() | st.integers(-9, 9)
                    | st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=10),
       st.booleans())
def test_json_safe_keeps_the_value_and_is_printable(value: object, indent: bool) -> None:
    raw = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0).decode()
    out = json_safe(raw)
    assert json.loads(out) == json.loads(raw)
    assert all(line.isprintable() for line in out.split("\n"))
    if not indent:
        assert "\n" not in out
