"""vak.policy.loader: schema + policy validation with file:line messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vak.config import SHIPPED_POLICY_DIR, KernelConfig
from vak.errors import PolicyError
from vak.policy.loader import load_policies, split_statements


def test_shipped_policies_load_and_every_policy_has_an_id() -> None:
    loaded = load_policies(KernelConfig().all_policy_dirs)
    assert loaded.digest.startswith("sha256:")
    assert all(i.startswith("vak.") for i in loaded.ids)
    assert len(set(loaded.ids)) == len(loaded.ids)


def _operator(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "ops"
    d.mkdir()
    (d / "ops.cedar").write_text(text)
    return d


BAD = [
    (
        "parse",
        '// c\n\n@id("a")\npermit(principal, action, resource);\n\n'
        '@id("b")\npermitt(principal, action, resource);\n',
        6,
        "parse error",
    ),
    (
        "unknown-attr",
        '@id("a")\npermit(principal, action == Vak::Action::"fs_read", resource)\n'
        "when { resource.nope };\n",
        1,
        "does not validate",
    ),
    (
        "no-id",
        '@id("a")\npermit(principal, action, resource);\npermit(principal, action, resource);\n',
        3,
        "no @id",
    ),
    (
        "dup-id",
        '@id("vak.obs.permit-log")\nforbid(principal, action, resource);\n',
        1,
        "duplicate @id",
    ),
    (
        "unknown-action",
        '@id("x")\nforbid(principal, action == Vak::Action::"exec", resource);\n',
        1,
        "does not validate",
    ),
]


@pytest.mark.parametrize(("text", "line", "msg"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_policy_names_file_and_line(tmp_path: Path, text: str, line: int, msg: str) -> None:
    d = _operator(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policies([SHIPPED_POLICY_DIR, d])
    assert f"ops.cedar:{line}:" in err.value.message
    assert msg in err.value.message
    assert err.value.details["line"] == line


def test_schema_required_exactly_once(tmp_path: Path) -> None:
    d = tmp_path / "two"
    shutil.copytree(SHIPPED_POLICY_DIR, d)
    with pytest.raises(PolicyError, match="exactly one"):
        load_policies([SHIPPED_POLICY_DIR, d])
    with pytest.raises(PolicyError, match="exactly one"):
        load_policies([tmp_path])


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policies([SHIPPED_POLICY_DIR, tmp_path / "nope"])


def test_digest_changes_with_any_policy_byte(tmp_path: Path) -> None:
    d = _operator(
        tmp_path, '@id("t")\nforbid(principal, action == Vak::Action::"log", resource);\n'
    )
    a = load_policies([SHIPPED_POLICY_DIR, d]).digest
    (d / "ops.cedar").write_text(
        '@id("t")\nforbid(principal, action == Vak::Action::"log", resource);\n '
    )
    assert load_policies([SHIPPED_POLICY_DIR, d]).digest != a


def test_split_ignores_semicolons_in_strings_and_comments() -> None:
    text = '// a; b\n@id("x;y")\nforbid(principal, action, resource) when { "a;b" == "c" };\n'
    sts = split_statements(text, "f")
    assert len(sts) == 1 and sts[0].policy_id == "x;y" and sts[0].line == 2


def test_approval_annotation_is_read_from_cedar(tmp_path: Path) -> None:
    """@approval("required") marks a permit (Cedar's parse, not a regex); the shipped
    templates load; any other value, or the annotation on a forbid, is refused."""
    repo = SHIPPED_POLICY_DIR
    d = tmp_path / "p"
    d.mkdir()
    shutil.copy(repo / "vak.cedarschema", d)
    shutil.copy(repo / "templates" / "approvals.cedar", d)
    (d / "decoy.cedar").write_text(
        '@id("decoy @approval(\\"required\\")")\n'
        'permit (principal, action == Vak::Action::"log", resource);\n')
    loaded = load_policies([d])
    assert loaded.approval_ids == {"template.approval.notes-writes",
                                   "template.approval.public-mutations"}
    for bad in ('@id("x")\n@approval("maybe")\npermit (principal, action, resource);\n',
                '@id("x")\n@approval("required")\nforbid (principal, action, resource);\n'):
        (d / "decoy.cedar").write_text(bad)
        with pytest.raises(PolicyError, match="@approval"):
            load_policies([d])
