"""The uppercase example's `log: true` path makes a well-formed `log` host call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "vak" / "examples" / "uppercase"


def test_uppercase_logs_its_result_through_the_log_host_call(tmp_path: Path) -> None:
    if not (EXAMPLE / "uppercase.wasm").exists():
        pytest.fail("vak/examples/uppercase/uppercase.wasm is missing: run tools/build_skills.py")
    done = subprocess.run(
        [sys.executable, "-m", "vak.cli.main", "skill", "test", str(EXAMPLE),
         "--input", json.dumps({"text": 'ab"c', "log": True})],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"text": 'AB"C'}
    assert "host calls 1" in done.stderr  # the log call was made and allowed, not an ABIError
