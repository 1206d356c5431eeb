"""vak.serve.tokens: only hashes are kept, every wrong token fails alike, the file is 0600."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import ConfigError
from vak.invocation import Principal
from vak.serve.tokens import MAX_TOKEN_BYTES, TokenFile


def test_add_prints_once_stores_the_hash_and_authenticates(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = TokenFile.load_or_empty(path).add("ci-agent")
    assert len(token) == 43 and token not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    store = TokenFile.load(path)
    assert store.authenticate(token) == Principal(id="ci-agent", kind="agent")
    assert store.authenticate(token.encode()) == Principal(id="ci-agent", kind="agent")
    assert not list(tmp_path.glob(".tokens.json.*"))  # no temporary file left


def test_two_callers_and_revoke(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    a = TokenFile.load_or_empty(path).add("alice")
    b = TokenFile.load(path).add("bob", kind="service")
    store = TokenFile.load(path)
    assert store.authenticate(a).id == "alice"  # type: ignore[union-attr]
    assert store.authenticate(b) == Principal(id="bob", kind="service")
    store.revoke("alice")
    store = TokenFile.load(path)
    assert store.authenticate(a) is None and store.names() == ("bob",)
    with pytest.raises(ConfigError, match="no token named"):
        store.revoke("alice")
    with pytest.raises(ConfigError, match="exists"):
        store.add("bob")


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "é", "../x", "a\nb"],
                         ids=["empty", "space", "long", "non-ascii", "path", "newline"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="token name"):
        TokenFile.load_or_empty(tmp_path / "t.json").add(name)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o666], ids=oct)
def test_a_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "tokens.json"
    TokenFile.load_or_empty(path).add("a")
    path.chmod(mode)
    with pytest.raises(ConfigError, match="group or others") as info:
        TokenFile.load(path)
    assert "chmod 600" in info.value.details["fix"]


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    TokenFile.load_or_empty(real).add("a")
    (tmp_path / "link.json").symlink_to(real)
    with pytest.raises(ConfigError, match="cannot open"):
        TokenFile.load(tmp_path / "link.json")


HEX = "0" * 64


@pytest.mark.parametrize("doc", [
    "not json", "[]", '{"version": 2, "tokens": []}', '{"version": 1}',
    '{"version": 1, "tokens": [1]}',
    '{"version": 1, "tokens": [{"name": "a"}]}',
    '{"version": 1, "tokens": [{"name": "a", "sha256": "XYZ"}]}',
    '{"version": 1, "tokens": [{"name": "a b", "sha256": "' + HEX + '"}]}',
    '{"version": 1, "tokens": [{"name": "a", "sha256": "' + HEX + '", "kind": 3}]}',
    '{"version": 1, "tokens": [{"name": "a", "sha256": "' + HEX + '"}, '
    '{"name": "a", "sha256": "' + HEX + '"}]}',
    "[" * 100_000,
], ids=["text", "list", "version", "no-tokens", "entry", "no-hash", "bad-hash", "bad-name",
        "bad-kind", "duplicate", "deep"])
def test_malformed_files_are_refused_naming_the_file(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(doc)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        TokenFile.load(path)
    assert str(path) in info.value.message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=MAX_TOKEN_BYTES + 8))
def test_no_other_bytes_authenticate(tmp_path_factory: pytest.TempPathFactory,
                                     presented: bytes) -> None:
    path = tmp_path_factory.mktemp("tok") / "t.json"
    token = TokenFile.load_or_empty(path).add("a")
    store = TokenFile.load(path)
    if presented != token.encode():
        assert store.authenticate(presented) is None


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=42), st.characters(codec="ascii"))
def test_any_changed_character_fails(tmp_path_factory: pytest.TempPathFactory, i: int,
                                     c: str) -> None:
    path = tmp_path_factory.mktemp("tok") / "t.json"
    token = TokenFile.load_or_empty(path).add("a")
    changed = token[:i] + c + token[i + 1:]
    result = TokenFile.load(path).authenticate(changed)
    assert (result is not None) == (changed == token)


def test_the_file_holds_only_names_kinds_hashes_and_dates(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    TokenFile.load_or_empty(path).add("a")
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and set(doc["tokens"][0]) == {"name", "kind", "sha256",
                                                            "created"}
