"""One CLI contract for vak, vak-skill-sign and vak-audit (docs/CLI.md, issue 13 item 5)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import parser_pages

from vak.audit.verify import Code
from vak.cli import _common, audit, main, skill_sign
from vak.cli._common import ERROR_CODES, Exit, exit_code_for, guarded
from vak.errors import (
    ConfigError,
    DigestMismatchError,
    InputValidationError,
    KeyFileError,
    ManifestError,
    PolicyDeniedError,
    SignatureError,
    SkillTimeout,
    UnknownToolError,
    UntrustedSignerError,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "CLI.md"
COMMANDS = {"vak": "vak.cli.main", "vak-skill-sign": "vak.cli.skill_sign",
            "vak-audit": "vak.cli.audit"}


def _doc_tables() -> list[list[tuple[int, str]]]:
    tables: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| (\d+) \| ([A-Z_]+) \|", line)
        if m:
            current.append((int(m.group(1)), m.group(2)))
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_docs_table_is_the_exit_enum() -> None:
    from vak.cli.review import ReplayCode

    shared, audit_codes, replay_codes = _doc_tables()
    assert shared == [(int(e), e.name) for e in Exit]
    assert audit_codes == [(int(c), c.name) for c in Code]
    assert replay_codes == [(int(c), c.name) for c in ReplayCode]


def test_vak_skill_sign_codes_are_unchanged() -> None:
    # a contract since the first release (docs/MANIFEST.md)
    expected = {ManifestError: 3, SignatureError: 4, DigestMismatchError: 5,
                UntrustedSignerError: 6, KeyFileError: 7, ConfigError: 8}
    for klass, code in expected.items():
        assert exit_code_for(klass("x"), skill_sign.EXIT_CODES) == code
        assert exit_code_for(klass("x"), ERROR_CODES) == code  # the same in `vak`


@pytest.mark.parametrize(("exc", "code"), [
    (InputValidationError("x"), Exit.INPUT_INVALID),
    (PolicyDeniedError("x"), Exit.POLICY_DENIED),
    (UnknownToolError("x"), Exit.UNKNOWN_TOOL),
    (SkillTimeout("x"), Exit.TOOL_FAILED),
    (SignatureError("x"), Exit.SIGNATURE),
], ids=["input", "denied", "unknown", "timeout", "unsigned"])
def test_failures_have_distinct_codes(exc: Exception, code: int) -> None:
    assert exit_code_for(exc, ERROR_CODES) == code


def test_vak_codes_never_collide_with_audit_results_except_shared() -> None:
    shared = {Exit.OK, Exit.ERROR, Exit.USAGE, Exit.MANIFEST, Exit.SIGNATURE, Exit.DIGEST,
              Exit.UNTRUSTED, Exit.KEY_FILE, Exit.CONFIG}
    assert {int(e) for e in Exit if e not in shared}.isdisjoint(int(c) for c in Code)


@pytest.mark.parametrize("prog", sorted(COMMANDS))
def test_version_on_every_command(prog: str) -> None:
    proc = subprocess.run([sys.executable, "-m", COMMANDS[prog], "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert re.fullmatch(rf"{prog} \S+\n", proc.stdout), proc.stdout


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "vak": main.build_parser, "vak-skill-sign": skill_sign.build_parser,
    "vak-audit": audit._parser,
}


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_every_flag_and_argument_has_help(prog: str) -> None:
    missing = []
    for parser in parser_pages(PARSERS[prog]()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{parser.prog}: {action.dest}")
    assert not missing, missing


# ---------------------------------------------------------------------- last resort
def _boom() -> int:
    raise RuntimeError("secret-looking guest text 0xdeadbeef")


def test_internal_error_is_one_line_and_code_70(capsys: pytest.CaptureFixture[str]) -> None:
    assert guarded(_boom, "vak", debug=False) == Exit.INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError" in err and "Traceback" not in err
    assert "deadbeef" not in err  # the exception's text is never quoted
    assert "--debug" in err


def test_internal_error_with_debug_shows_the_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert guarded(_boom, "vak", debug=True) == Exit.INTERNAL
    assert "Traceback" in capsys.readouterr().err


def test_debug_from_flag_or_environment() -> None:
    assert _common.debug_requested(["run", "--debug"], {})
    assert _common.debug_requested([], {"VAK_DEBUG": "1"})
    assert not _common.debug_requested([], {"VAK_DEBUG": "0"})
    assert not _common.debug_requested([], {})


def test_unexpected_exception_in_a_vak_handler_exits_70(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from vak.cli import status

    monkeypatch.setattr(status, "machine_status", lambda: {}["missing"])
    assert main.main(["status", "--json"]) == Exit.INTERNAL
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "Traceback" not in err


def test_unexpected_exception_in_vak_audit_exits_70(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "vak.log"
    log.write_text("")
    monkeypatch.setattr(audit, "_cmd_show", lambda args: {}["missing"])
    code = audit.main(["show", str(log)])
    assert code == Exit.INTERNAL and code not in (Code.OK, Code.WARNINGS)
    assert "Traceback" not in capsys.readouterr().err


def test_broken_pipe_exits_141_quietly() -> None:
    # a handler whose stdout reader has gone: print() raises BrokenPipeError
    code = (
        "import sys\n"
        "from vak.cli._common import guarded\n"
        "def body():\n"
        "    for _ in range(100000):\n"
        "        print('x' * 100)\n"
        "    return 0\n"
        "sys.exit(guarded(body, 'vak', debug=False))\n"
    )
    proc = subprocess.run(f"{sys.executable} -c \"{code}\" | head -c 10 > /dev/null; "
                          "echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == str(int(Exit.BROKEN_PIPE)), proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_exception_while_building_the_parser_exits_70(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> argparse.ArgumentParser:
        raise ImportError("a subcommand module is broken")

    monkeypatch.setattr(main, "build_parser", broken)
    assert main.main(["status"]) == Exit.INTERNAL
    assert "internal error: ImportError" in capsys.readouterr().err
