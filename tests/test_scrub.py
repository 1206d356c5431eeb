"""vak.scrub: the one scrubber (outputs after decoding, texts, errors, excerpts)."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vak.errors import ABIError, PolicyDeniedError
from vak.scrub import (
    MIN_LEN,
    REDACTED,
    Scrubber,
    digest,
    escape,
    excerpt,
    quote,
    scrub_error,
)

SECRET = "tok-5ecr3t-ABCDEF123456"


# ---------------------------------------------------------------------- encoders
def _escape_all(value: Any) -> str:
    """JSON with every character of every string spelled as a \\u escape."""
    if isinstance(value, str):
        return '"' + "".join(_u(ch) for ch in value) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(f"{_escape_all(k)}:{_escape_all(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_escape_all(v) for v in value) + "]"
    return json.dumps(value)


def _u(ch: str) -> str:
    code = ord(ch)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _escape_some(value: Any, rng: random.Random) -> str:
    """JSON where each character is escaped or not at random (and \\/ for '/')."""
    if isinstance(value, str):
        out = []
        for ch in value:
            if ch in '"\\' or ord(ch) < 0x20:
                out.append(_u(ch))
            elif ch == "/" and rng.random() < 0.5:
                out.append("\\/")
            else:
                out.append(_u(ch) if rng.random() < 0.5 else ch)
        return '"' + "".join(out) + '"'
    if isinstance(value, dict):
        items = ",".join(f"{_escape_some(k, rng)} : {_escape_some(v, rng)}"
                         for k, v in value.items())
        return "{ " + items + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_escape_some(v, rng) for v in value) + "]"
    return json.dumps(value)


ENCODERS = {
    "orjson": lambda v, rng: orjson.dumps(v),
    "json-ascii": lambda v, rng: json.dumps(v).encode(),
    "json-utf8": lambda v, rng: json.dumps(v, ensure_ascii=False).encode("utf-8"),
    "json-indent": lambda v, rng: json.dumps(v, indent=3).encode(),
    "escape-all": lambda v, rng: _escape_all(v).encode(),
    "escape-some": lambda v, rng: _escape_some(v, rng).encode(),
}

# strings that do not contain the secret by themselves
_plain = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), _plain)
_json = st.recursive(
    _scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(_plain, kids, max_size=4)),
    max_leaves=20,
)


def _plant(value: Any, secret: str, where: int, as_key: bool, pre: str, post: str) -> Any:
    """``value`` with ``pre + secret + post`` planted at a position chosen by ``where``."""
    planted = pre + secret + post
    if isinstance(value, dict):
        if as_key or not value:
            return {**value, planted: where}
        keys = list(value)
        k = keys[where % len(keys)]
        return {**value, k: _plant(value[k], secret, where // 7, as_key, pre, post)}
    if isinstance(value, list):
        if not value:
            return [planted]
        i = where % len(value)
        return [*value[:i], _plant(value[i], secret, where // 7, as_key, pre, post),
                *value[i + 1:]]
    return {"planted": planted, "was": value} if as_key else planted


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


_secrets = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cf")),
                   min_size=MIN_LEN, max_size=24)


@settings(max_examples=300, deadline=None)
@given(secret=_secrets, tree=_json, where=st.integers(0, 10**6), as_key=st.booleans(),
       pre=_plain, post=_plain, encoder=st.sampled_from(sorted(ENCODERS)),
       seed=st.integers(0, 2**32))
def test_any_json_encoding_of_the_secret_anywhere_is_caught(
    secret: str, tree: Any, where: int, as_key: bool, pre: str, post: str, encoder: str,
    seed: int,
) -> None:
    # a "secret" that is itself part of the redaction marker cannot be told apart from it
    assume(secret.casefold() not in REDACTED.casefold())
    doc = _plant(tree, secret, where, as_key, pre, post)
    raw = ENCODERS[encoder](doc, random.Random(seed))
    assert orjson.loads(raw) == doc  # the encoder is a faithful JSON encoding
    clean = orjson.loads(Scrubber([secret]).output(raw))
    for s in _strings(clean):
        assert secret not in s
        assert secret.casefold() not in s.casefold()


@settings(max_examples=200, deadline=None)
@given(tree=_json, encoder=st.sampled_from(sorted(ENCODERS)), seed=st.integers(0, 2**32))
def test_output_without_the_secret_is_returned_as_is(tree: Any, encoder: str, seed: int) -> None:
    raw = ENCODERS[encoder](tree, random.Random(seed))
    assume(not any(SECRET.casefold() in s.casefold() for s in _strings(tree)))
    assert Scrubber([SECRET]).output(raw) is raw


def test_output_nested_beyond_recursion_is_checked_without_crashing() -> None:
    raw = ('{"d":' + "[" * 900 + json.dumps(SECRET) + "]" * 900 + "}").encode()
    clean = Scrubber([SECRET]).output(raw)
    assert SECRET.encode() not in clean
    assert orjson.loads(clean)["d"]  # still JSON, the leaking subtree replaced


def test_duplicate_key_dropped_by_decoding_is_not_kept_in_the_bytes() -> None:
    raw = ('{"v":"' + SECRET + '","v":"x"}').encode()
    clean = Scrubber([SECRET]).output(raw)
    assert SECRET.encode() not in clean and orjson.loads(clean) == {"v": "x"}


def test_deep_output_with_a_dropped_duplicate_fails_closed() -> None:
    inner = '{"v":"' + SECRET + '","v":"x"}'
    raw = ("[" * 300 + inner + "]" * 300).encode()
    clean = Scrubber([SECRET]).output(raw)
    assert SECRET.encode() not in clean
    orjson.loads(clean)


def test_empty_scrubber_is_the_identity() -> None:
    s = Scrubber()
    assert not s
    raw = orjson.dumps({"v": SECRET})
    assert s.output(raw) is raw
    assert s.text(SECRET) == SECRET
    assert Scrubber(["abc"]).values == frozenset()  # below MIN_LEN: not matched


# ---------------------------------------------------------------------- texts
TEXT_CASES = [
    ("raw", f"header '{SECRET}' invalid"),
    ("repr", f"header {SECRET!r} invalid"),
    ("json-escaped", "v=" + json.dumps(SECRET)),
    ("lower-cased (normalised host)", f"host {SECRET.lower()} is not allowed"),
    ("percent-encoded", "url /a%2D" + SECRET.replace("-", "%2d")),
    ("literal \\u escapes", "x " + "".join(_u(c) for c in SECRET)),
    ("zero-width inside", "x " + SECRET[:5] + "\u200b" + SECRET[5:]),
    ("fullwidth (NFKC)", "x " + "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c
                                         for c in SECRET)),
    ("bytes repr", f"b'{SECRET}'"),
    ("html entities", "x " + "".join(f"&#{ord(c)};" for c in SECRET[:6]) + SECRET[6:]),
    ("hex html entities", "x " + "".join(f"&#x{ord(c):x};" for c in SECRET)),
    ("python \\U escapes", "x " + "".join(f"\\U{ord(c):08x}" for c in SECRET)),
    ("double-escaped", "x " + "".join(f"\\\\u{ord(c):04x}" for c in SECRET)),
]


@pytest.mark.parametrize(("name", "text"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_text_forms_are_scrubbed(name: str, text: str) -> None:
    out = Scrubber([SECRET]).text(text)
    assert SECRET.casefold() not in out.casefold()
    assert not Scrubber([SECRET]).leaks(out)
    assert REDACTED in out


def test_text_keeps_the_rest() -> None:
    assert Scrubber([SECRET]).text(f"a {SECRET} b") == f"a {REDACTED} b"


@settings(max_examples=200, deadline=None)
@given(secret=_secrets, pre=st.text(max_size=30), post=st.text(max_size=30))
def test_text_never_returns_the_value(secret: str, pre: str, post: str) -> None:
    assume(secret.casefold() not in REDACTED.casefold())
    out = Scrubber([secret]).text(pre + secret + post)
    assert secret not in out


# ---------------------------------------------------------------------- errors
def test_scrub_error_message_details_and_args() -> None:
    exc = PolicyDeniedError(f"refused: header {SECRET!r}\n\x1b[31mforged",
                            resource=f"https://{SECRET}/", nested={"k": [SECRET]},
                            output_prefix=b"{" + SECRET.encode(), **{SECRET: 1})
    try:
        raise exc from ValueError(SECRET)
    except PolicyDeniedError:
        pass
    scrub_error(exc, Scrubber([SECRET]))
    shown = str(exc) + repr(exc.args) + exc.diagnostics() + json.dumps(exc.to_dict())
    assert SECRET not in shown
    assert "\n" not in exc.message and "\x1b" not in exc.message
    assert exc.details["output_prefix"] == {"size": len(SECRET) + 1,
                                            "digest": digest(b"{" + SECRET.encode())}
    assert exc.__cause__ is None and exc.__suppress_context__


def test_scrub_error_bounds_the_message() -> None:
    exc = ABIError("x" * 10_000)
    scrub_error(exc)
    assert len(exc.message) < 2100


def test_scrub_error_leaves_foreign_exceptions() -> None:
    exc = ValueError(SECRET)
    assert scrub_error(exc, Scrubber([SECRET])) is exc
    assert str(exc) == SECRET


# ---------------------------------------------------------------------- excerpts
def test_excerpt_is_bounded_escaped_scrubbed() -> None:
    text = "a\nb\x1b[2J\u202e" + SECRET + "z" * 100
    out = excerpt(text, Scrubber([SECRET]), limit=30)
    assert SECRET not in out and "\n" not in out and "\x1b" not in out and "\u202e" not in out
    assert "(+" in out
    q = quote(text, Scrubber([SECRET]))
    assert q.endswith(f"({digest(text)})")


def test_excerpt_scrubs_before_cutting() -> None:
    """A value straddling the cut is redacted, not left as a prefix."""
    text = "x" * 40 + SECRET
    out = excerpt(text, Scrubber([SECRET]), limit=48)
    assert SECRET[:8] not in out


def test_escape() -> None:
    assert escape("plain") == "plain"
    assert escape("a\\b") == "a\\\\b"
    assert escape("a\\b", backslash=False) == "a\\b"
    assert escape("\x00\u200b\U000e0041") == "\\x00\\u200b\\U000e0041"
