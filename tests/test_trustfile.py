"""Trust store edits: add/revoke keep the operator's text, saves are atomic and locked."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import ConfigError
from vak.identity.keys import SigningKey, VerifyKey, format_public_key
from vak.identity.trust import Tier, TrustStore
from vak.identity.trustfile import TrustFile


def _vk(seed: int) -> VerifyKey:
    return SigningKey(bytes([seed]) * 32).verify_key


HAND_WRITTEN = f"""# Operator trust store
# (reviewed 2026-11)
keys:
    # the CI key
    -   key: "{format_public_key(_vk(1))}"   # do not remove
        tier: trusted
        comment: CI

    -   key: '{format_public_key(_vk(2))}'
        tier: untrusted
        revoked: false
        skills: [notes]
# trailing comment
"""


def test_add_keeps_comments_and_indentation(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(HAND_WRITTEN)
    with TrustFile.edit(path) as trust:
        entry = trust.add(_vk(3), Tier.UNTRUSTED, skills=["calculator", "notes"],
                          comment='say "hi"\nbye', expires=datetime(2030, 1, 2, tzinfo=UTC))
    text = path.read_text()
    assert text.startswith(HAND_WRITTEN.split("# trailing comment")[0].rstrip("\n"))
    assert "# do not remove" in text and "# the CI key" in text and "# trailing comment" in text
    assert f'    -   key: "{format_public_key(_vk(3))}"\n        tier: untrusted\n' in text
    store = TrustStore.load(path)
    assert [k.key_id for k in store.keys] == [_vk(1).key_id, _vk(2).key_id, _vk(3).key_id]
    assert store.lookup(entry.key_id) == entry
    assert entry.comment == 'say "hi"\nbye' and entry.skills == {"calculator", "notes"}


def test_revoke_changes_one_line(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(HAND_WRITTEN)
    with TrustFile.edit(path) as trust:
        trust.revoke(_vk(2).key_id)           # has 'revoked: false': flipped in place
        trust.revoke(_vk(1).key_id[8:20])     # a prefix without the scheme works too
    before, after = HAND_WRITTEN.splitlines(), path.read_text().splitlines()
    assert len(after) == len(before) + 1
    assert "        revoked: true" in after and "        revoked: false" not in after
    assert after[after.index("        comment: CI") + 1] == "        revoked: true"
    store = TrustStore.load(path)
    assert all(k.revoked for k in store.keys)
    with TrustFile.edit(path) as trust:  # revoking again changes nothing
        trust.revoke(_vk(1).key_id)
    assert path.read_text().splitlines() == after


def test_add_to_empty_list_keeps_the_template(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    template = "# written by vak init\n# add keys with `vak trust add`\nkeys: []\n# end\n"
    path.write_text(template)
    with TrustFile.edit(path) as trust:
        trust.add(_vk(4), Tier.TRUSTED)
    text = path.read_text()
    assert text.startswith("# written by vak init\n# add keys with `vak trust add`\nkeys:")
    assert text.endswith("# end\n")
    assert TrustStore.load(path).lookup(_vk(4).key_id).tier is Tier.TRUSTED


def test_flow_style_file_is_re_rendered_keeping_its_header(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(f'# header\nkeys: [{{key: "{format_public_key(_vk(1))}", tier: trusted}}]\n')
    with TrustFile.edit(path) as trust:
        trust.add(_vk(5), Tier.UNTRUSTED)
        trust.revoke(_vk(1).key_id)
    assert path.read_text().startswith("# header\nkeys:\n  - key: ")
    store = TrustStore.load(path)
    assert store.lookup(_vk(1).key_id).revoked and not store.lookup(_vk(5).key_id).revoked


def test_new_file_and_modes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "trust.yaml"
    with pytest.raises(ConfigError, match="not found"):
        TrustFile.load(path)
    with TrustFile.edit(path, create=True) as trust:
        trust.add(_vk(6), Tier.TRUSTED)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    with TrustFile.edit(path) as trust:
        trust.add(_vk(7), Tier.TRUSTED)
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(TrustStore.load(path)) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["trust.yaml", "trust.yaml.lock"]


@pytest.mark.parametrize(("action", "hint"), [
    (lambda t: t.add(_vk(1), Tier.TRUSTED), "already in the trust store"),
    (lambda t: t.add(_vk(9), "trusted"), "not a tier"),
    (lambda t: t.add(_vk(9), Tier.TRUSTED, expires=datetime(2030, 1, 1)), "time zone"),
    (lambda t: t.add(_vk(9), Tier.TRUSTED, skills=["Bad Name"]), r"skills\[0\]"),
    (lambda t: t.revoke("ed25519:12"), "not a key id"),
    (lambda t: t.revoke("ed25519:" + "0" * 32), "no key matches"),
    (lambda t: t.revoke("zz"), "not a key id"),
], ids=["duplicate", "tier-str", "naive-expires", "bad-skill", "short-prefix", "unknown",
        "junk"])
def test_bad_edits_are_refused(tmp_path: Path, action: object, hint: str) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(HAND_WRITTEN)
    trust = TrustFile.load(path)
    with pytest.raises(ConfigError, match=hint):
        action(trust)  # type: ignore[operator]
    assert path.read_text() == HAND_WRITTEN


def test_a_revoked_key_cannot_be_added_back(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(HAND_WRITTEN)
    with TrustFile.edit(path) as trust:
        trust.revoke(_vk(1).key_id)
    with pytest.raises(ConfigError, match="revoked"), TrustFile.edit(path) as trust:
        trust.add(_vk(1), Tier.TRUSTED)


def test_save_refuses_a_file_changed_underneath(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(HAND_WRITTEN)
    trust = TrustFile.load(path)
    trust.add(_vk(8), Tier.TRUSTED)
    path.write_text(HAND_WRITTEN + "# someone else\n")
    with pytest.raises(ConfigError, match="changed since it was loaded"):
        trust.save()
    assert path.read_text().endswith("# someone else\n")


def test_concurrent_editors_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"

    def add(seed: int) -> None:
        with TrustFile.edit(path, create=True) as trust:
            trust.add(_vk(seed), Tier.TRUSTED)

    threads = [threading.Thread(target=add, args=(s,)) for s in range(10, 26)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {k.key_id for k in TrustStore.load(path).keys} == {
        _vk(s).key_id for s in range(10, 26)}


@settings(max_examples=60, deadline=None)
@given(comment=st.text(max_size=40), skills=st.none() | st.lists(
    st.from_regex(r"[a-z][a-z0-9_-]{0,30}", fullmatch=True), max_size=3),
    minutes=st.none() | st.integers(min_value=-10**6, max_value=10**6),
    tier=st.sampled_from(list(Tier)))
def test_any_entry_round_trips(tmp_path_factory: pytest.TempPathFactory, comment: str,
                               skills: list[str] | None, minutes: int | None,
                               tier: Tier) -> None:
    path = tmp_path_factory.mktemp("t") / "trust.yaml"
    path.write_text(HAND_WRITTEN)
    zone = timezone(timedelta(hours=5))
    expires = None if minutes is None else (
        datetime(2030, 1, 1, tzinfo=zone) + timedelta(minutes=minutes)).replace(microsecond=0)
    with TrustFile.edit(path) as trust:
        entry = trust.add(_vk(30), tier, skills=skills, comment=comment, expires=expires)
    assert TrustStore.load(path).lookup(entry.key_id) == entry


def test_a_world_writable_trust_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(HAND_WRITTEN)
    path.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by every user") as info:
        TrustStore.load(path)
    assert info.value.details["fix"] == f"chmod o-w {path}"
    with pytest.raises(ConfigError, match="writable by every user"):
        TrustFile.load(path)


def test_crlf_files_are_edited(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_bytes(HAND_WRITTEN.replace("\n", "\r\n").encode())
    with TrustFile.edit(path) as trust:
        trust.add(_vk(40), Tier.TRUSTED)
        trust.revoke(_vk(1).key_id)
    store = TrustStore.load(path)
    assert store.lookup(_vk(1).key_id).revoked and _vk(40).key_id in store
    assert b"# do not remove" in path.read_bytes()
