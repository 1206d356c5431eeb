"""vak.review.logread: lenient reading, and the unparsed skip of lines that cannot matter."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from vak.review.logread import kind_needles, may_be, parse_line, read_entries
from vak.review.replay import KINDS

_NAMES = st.sampled_from([*KINDS, "host_result", "invocation_started", "log_opened"])


def _spell(kind: str, escaped: list[bool]) -> str:
    """``kind`` as a JSON string body, some characters as \\u escapes."""
    return "".join(f"\\u{ord(c):04x}" if e else c for c, e in zip(kind, escaped, strict=False))


@given(kind=_NAMES | st.text(max_size=20), escaped=st.lists(st.booleans(), max_size=20),
       extra=st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3),
       ascii_only=st.booleans())
def test_a_skipped_line_never_holds_a_wanted_kind(kind: str, escaped: list[bool],
                                                  extra: dict[str, str],
                                                  ascii_only: bool) -> None:
    body = json.dumps({**extra, "seq": 1}, ensure_ascii=ascii_only)[:-1]
    if kind.isascii() and kind.isprintable() and '"' not in kind and "\\" not in kind:
        spelled = _spell(kind, escaped + [False] * len(kind))
    else:
        spelled = json.dumps(kind, ensure_ascii=ascii_only)[1:-1]
    line = f'{body}, "kind": "{spelled}"}}'.encode()
    entry = parse_line(line)
    if not may_be(line, kind_needles(KINDS)):
        assert entry is None or entry["kind"] not in KINDS


def test_reading_only_some_kinds_counts_the_rest(tmp_path: Path) -> None:
    lines = [
        {"seq": 0, "kind": "log_opened"},
        {"seq": 1, "kind": "policy_set", "policy_set": "sha256:00"},
        {"seq": 2, "kind": "host_result", "resource": "/w/host_decision.txt"},  # parsed, dropped
        {"seq": 3, "kind": "host_decision"},
        {"seq": 4, "kind": "invocation_finished"},
    ]
    log = tmp_path / "vak.log"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines)
                    + b'{"seq": 5, "kind": "host\\u005fdecision"}\n' + b"not json\n"
                    + b"garbage host_decision\n")
    every = read_entries(log)
    assert len(every) == 6 and every.unreadable == 2 and every.skipped == 0
    some = read_entries(log, kinds=KINDS)
    assert [e["seq"] for e in some] == [1, 3, 5]
    assert some.skipped == 4  # log_opened, host_result, invocation_finished, not json
    assert some.unreadable == 1  # "garbage host_decision" might have been one
