"""docs/POLICY.md's operator examples are valid policies against the shipped schema."""

from __future__ import annotations

import re
from pathlib import Path

from vak.config import SHIPPED_POLICY_DIR
from vak.policy.loader import load_policies

DOC = Path(__file__).resolve().parent.parent / "docs" / "POLICY.md"


def test_cedar_examples_validate(tmp_path: Path) -> None:
    blocks = re.findall(r"```cedar\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks
    (tmp_path / "examples.cedar").write_text("\n".join(blocks))
    loaded = load_policies([SHIPPED_POLICY_DIR, tmp_path])
    assert {"ops.net.no-tracker", "ops.net.token-egress"} <= set(loaded.ids)
