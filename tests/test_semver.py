"""Semantic version precedence (semver.org section 11), tested against the spec and an oracle."""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vak.identity.semver import Version

SPEC_ORDER = [
    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
    "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0-0", "2.0.0",
    "10.0.0",
]


def test_spec_examples_are_in_order() -> None:
    versions = [Version.parse(v) for v in SPEC_ORDER]
    for a, b in itertools.pairwise(versions):
        assert a < b and b > a and a <= b and a != b, (a, b)


def test_build_metadata_is_ignored() -> None:
    assert Version.parse("1.0.0+a.1") == Version.parse("1.0.0+b")
    assert hash(Version.parse("1.0.0+a")) == hash(Version.parse("1.0.0"))
    assert not Version.parse("1.0.0+z") < Version.parse("1.0.0+a")


@pytest.mark.parametrize("text", [
    "1", "1.0", "01.0.0", "1.00.0", "1.0.0-", "1.0.0-01", "1.0.0-a..b", "1.0.0+", "1.0.0+a..b",
    "v1.0.0", " 1.0.0", "1.0.0 ", "1.0.0-\u00e9", "\u0661.0.0", "1.0.0\n", "9" * 300 + ".0.0",
])
def test_invalid_versions_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Version.parse(text)


def test_huge_components_compare_without_int_conversion() -> None:
    big = Version.parse("9" * 100 + ".0.0")
    assert big > Version.parse("9" * 99 + ".9.9") and big < Version.parse("1" + "0" * 100 + ".0.0")


_num = st.integers(min_value=0, max_value=10**30)
_alnum = st.from_regex(r"[0-9a-zA-Z-]*[a-zA-Z-][0-9a-zA-Z-]*", fullmatch=True).filter(
    lambda s: len(s) < 12)
_pre_id = st.one_of(_num.map(str), _alnum)
_versions = st.tuples(_num, _num, _num, st.lists(_pre_id, max_size=4),
                      st.lists(_alnum, max_size=2))


def _text(parts: tuple[int, int, int, list[str], list[str]]) -> str:
    major, minor, patch, pre, build = parts
    text = f"{major}.{minor}.{patch}"
    if pre:
        text += "-" + ".".join(pre)
    if build:
        text += "+" + ".".join(build)
    return text


def _oracle(a: str, b: str) -> int:
    """An independent reading of section 11 with Python ints, -1/0/1."""
    def split(v: str) -> tuple[list[int], list[str]]:
        core, _, pre = v.split("+")[0].partition("-")
        return [int(x) for x in core.split(".")], pre.split(".") if pre else []

    (ca, pa), (cb, pb) = split(a), split(b)
    if ca != cb:
        return -1 if ca < cb else 1
    if not pa or not pb:
        return (not pa) - (not pb)
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


@given(_versions, _versions)
def test_precedence_matches_the_oracle(a: tuple[int, int, int, list[str], list[str]],
                                       b: tuple[int, int, int, list[str], list[str]]) -> None:
    ta, tb = _text(a), _text(b)
    va, vb = Version.parse(ta), Version.parse(tb)
    expected = _oracle(ta, tb)
    assert (va < vb, va == vb, va > vb) == (expected < 0, expected == 0, expected > 0)


@given(_versions)
def test_round_trip(parts: tuple[int, int, int, list[str], list[str]]) -> None:
    text = _text(parts)
    assert str(Version.parse(text)) == text


@given(st.lists(_versions, min_size=2, max_size=8))
def test_sorting_agrees_with_the_oracle(many: list[tuple[int, int, int, list[str], list[str]]]
                                        ) -> None:
    texts = [_text(p) for p in many]
    by_us = sorted(texts, key=Version.parse)
    by_oracle = sorted(texts, key=functools.cmp_to_key(_oracle))
    assert [Version.parse(t) for t in by_us] == [Version.parse(t) for t in by_oracle]
