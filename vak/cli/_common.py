"""Shared plumbing for VAK's command-line tools: one contract for all three.

Every CLI builds an ``argparse`` parser whose subcommands set
``func=handler`` (``handler(args) -> int``), then calls :func:`run`::

    parser = make_parser("vak-x", "Do X.", epilog=EXAMPLES)
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "check", "Check a thing.", check, json_flag=True)
    raise SystemExit(run(parser, argv, ERROR_CODES))

The contract (docs/CLI.md, pinned by tests/test_cli_contract.py):

* **one exit-code table**, :class:`Exit`: a failure has the same code in every
  command that can meet it (an unsigned skill is 4 in ``vak run``, ``vak skill
  test`` and ``vak-skill-sign verify``). ``vak-audit`` keeps its verification
  codes (:class:`vak.audit.verify.Code`, 0..14) and shares the rest.
* ``--version`` and ``--debug`` on every command (:func:`add_standard_flags`).
* :func:`guarded` runs a command's body: a :class:`~vak.errors.VakError` is
  printed once as ``error: <message>`` plus its details (file, field, valid,
  fix), or a ``{"ok": false, ...}`` object with ``--json``; a closed stdout
  (``vak-audit show | head -1``) exits 141 silently; Ctrl-C exits 130; any
  other exception is a bug and exits 70 with one line naming its type and
  place, the traceback only with ``--debug`` or ``VAK_DEBUG=1``. The one-liner
  never quotes the exception's text, which may carry guest-supplied bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from importlib import metadata
from typing import Any

from vak.errors import (
    AuditError,
    ConfigError,
    DigestMismatchError,
    InputValidationError,
    KeyFileError,
    ManifestError,
    OSSandboxUnavailableError,
    PolicyDeniedError,
    PolicyError,
    SignatureError,
    SkillLoadError,
    ToolCallError,
    UnknownToolError,
    UntrustedSignerError,
    VakError,
)

__all__ = [
    "ERROR_CODES",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "Exit",
    "add_command",
    "add_standard_flags",
    "debug_requested",
    "emit",
    "exit_code_for",
    "guarded",
    "make_parser",
    "read_secret",
    "run",
    "version",
]


class Exit(IntEnum):
    """Exit codes of ``vak`` and ``vak-skill-sign`` (``vak-audit``: see docs/CLI.md)."""

    OK = 0
    #: a VakError without a more specific code (``vak-audit``: verified with WARNINGS)
    ERROR = 1
    #: bad command line, or a file that cannot be read or written
    USAGE = 2
    #: skill.yaml invalid (file and field named)
    MANIFEST = 3
    #: skill not signed, or its signature does not verify
    SIGNATURE = 4
    #: the module's bytes do not match the signed digest
    DIGEST = 5
    #: signer unknown to the trust store, revoked, expired, or not allowed this skill
    UNTRUSTED = 6
    #: key file missing, malformed, or wrong passphrase
    KEY_FILE = 7
    #: vak.toml, trust store or passphrase source invalid
    CONFIG = 8
    #: a host call was denied by policy (``vak run``, ``vak skill test``, ``vak policy test``)
    POLICY_DENIED = 20
    #: the tool input is not JSON or does not match the export's input schema
    INPUT_INVALID = 21
    #: no loaded tool has that name
    UNKNOWN_TOOL = 22
    #: the call failed in the sandbox: trap, deadline, fuel, memory, bad output, worker
    TOOL_FAILED = 23
    #: the Cedar schema or a policy is invalid
    POLICY_INVALID = 24
    #: the audit log cannot be opened, appended or trusted
    AUDIT = 25
    #: a skill could not be built or loaded (compile error, wire-name collision)
    SKILL_LOAD = 26
    #: require_os_sandbox is set but this machine lacks a barrier
    OS_SANDBOX = 27
    #: an unexpected exception: a bug (rerun with --debug for the traceback)
    INTERNAL = 70
    #: interrupted (Ctrl-C)
    INTERRUPTED = 130
    #: stdout was closed early (e.g. piped into ``head``)
    BROKEN_PIPE = 141


EXIT_OK = Exit.OK
EXIT_ERROR = Exit.ERROR
EXIT_USAGE = Exit.USAGE
EXIT_INTERRUPTED = Exit.INTERRUPTED

#: error class -> exit code; the most specific class of an error wins
ERROR_CODES: Mapping[type[BaseException], int] = {
    ManifestError: Exit.MANIFEST,
    SignatureError: Exit.SIGNATURE,
    DigestMismatchError: Exit.DIGEST,
    UntrustedSignerError: Exit.UNTRUSTED,
    KeyFileError: Exit.KEY_FILE,
    ConfigError: Exit.CONFIG,
    PolicyDeniedError: Exit.POLICY_DENIED,
    InputValidationError: Exit.INPUT_INVALID,
    UnknownToolError: Exit.UNKNOWN_TOOL,
    ToolCallError: Exit.TOOL_FAILED,
    PolicyError: Exit.POLICY_INVALID,
    AuditError: Exit.AUDIT,
    SkillLoadError: Exit.SKILL_LOAD,
    OSSandboxUnavailableError: Exit.OS_SANDBOX,
}

Handler = Callable[[argparse.Namespace], int]


def version() -> str:
    """The installed distribution's version (``unknown`` when run from a bare tree)."""
    try:
        return metadata.version("vak")
    except metadata.PackageNotFoundError:
        return "unknown"


def add_standard_flags(parser: argparse.ArgumentParser, prog: str) -> None:
    """``--version`` and ``--debug``, which every VAK command accepts."""
    parser.add_argument("--version", action="version", version=f"{prog} {version()}",
                        help="print the version and exit")
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error print the traceback (also: VAK_DEBUG=1)")


def debug_requested(argv: Sequence[str] | None, environ: Mapping[str, str] = os.environ) -> bool:
    """``--debug`` anywhere on the command line, or ``VAK_DEBUG`` set to a non-empty value."""
    args = sys.argv[1:] if argv is None else argv
    return "--debug" in args or environ.get("VAK_DEBUG", "") not in ("", "0")


def make_parser(prog: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """A parser that keeps the epilog's formatting and has the standard flags."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_standard_flags(parser, prog)
    return parser


def add_command(
    sub: Any, name: str, help_: str, func: Handler, *, epilog: str = "", json_flag: bool = False
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``func``; ``json_flag`` adds ``--json``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_, description=help_, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    return parser


def exit_code_for(exc: BaseException, codes: Mapping[type[BaseException], int]) -> int:
    """The code of the most specific class in ``codes`` that ``exc`` is an instance of."""
    for klass in type(exc).__mro__:
        if klass in codes:
            return codes[klass]
    return EXIT_ERROR


def emit(args: argparse.Namespace, data: Mapping[str, Any], text: str) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        print(text)


def read_secret(file: str | None, env: str | None, environ: Mapping[str, str]) -> bytes | None:
    """A passphrase from ``--passphrase-file`` (its first line) or ``--passphrase-env``.

    Returns None when neither is given. The secret is never printed.

    Raises:
        ConfigError: the file cannot be read, the variable is unset, or the
            secret is empty.
    """
    if file is not None:
        try:
            with open(file, "rb") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"{file}: cannot read passphrase file: {exc.strerror}", file=file
            ) from None
        secret, where = (lines[0] if lines else b""), file
    elif env is not None:
        if env not in environ:
            raise ConfigError(
                f"environment variable {env} is not set", field=env,
                fix=f"export {env}=... or use --passphrase-file",
            )
        secret, where = environ[env].encode("utf-8"), f"${env}"
    else:
        return None
    if not secret:
        raise ConfigError(f"{where}: the passphrase is empty", fix="use a non-empty passphrase")
    return secret


def _report(exc: VakError, code: int, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"ok": False, "exit_code": code, **exc.to_dict()}, indent=2,
                         default=str))
    lines = exc.diagnostics().splitlines() or [type(exc).__name__]
    print(f"error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(line, file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{os.path.basename(last.filename)}:{last.lineno} in {last.name}"


def guarded(body: Callable[[], int], prog: str, *, debug: bool) -> int:
    """Run ``body`` under the contract's last-resort handling (module docstring).

    Returns:
        ``body``'s code; 141 on a closed stdout; 130 on Ctrl-C; 70 on any
        unexpected exception (``SystemExit`` from argparse passes through).
    """
    try:
        code = body()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _silence_stdout()
        return Exit.BROKEN_PIPE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except Exception as exc:  # the last resort: a bug, reported and given its own code
        if debug:
            traceback.print_exc()
        print(f"{prog}: internal error: {type(exc).__name__} at {_where(exc)} (a bug in "
              "VAK: rerun with --debug or VAK_DEBUG=1 for the traceback and report it)",
              file=sys.stderr)
        return Exit.INTERNAL


def _dispatch(args: argparse.Namespace, codes: Mapping[type[BaseException], int]) -> int:
    as_json = bool(getattr(args, "json", False))
    try:
        result: int = args.func(args)
        return result
    except VakError as exc:
        code = exit_code_for(exc, codes)
        _report(exc, code, as_json)
        return code
    except BrokenPipeError:
        raise
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return Exit.USAGE


def run(
    parser: argparse.ArgumentParser | Callable[[], argparse.ArgumentParser],
    argv: Sequence[str] | None,
    codes: Mapping[type[BaseException], int] = ERROR_CODES,
    prog: str = "vak",
) -> int:
    """Parse ``argv``, run the chosen handler, map failures to exit codes.

    ``parser`` may be a factory, so that building it (which imports the
    subcommands' modules) is covered by the same last-resort handling.

    Returns:
        the process exit code (never raises for expected failures; argparse's
        own exits for ``--help``, ``--version`` and usage errors pass through).
    """
    def body() -> int:
        built = parser if isinstance(parser, argparse.ArgumentParser) else parser()
        return _dispatch(built.parse_args(argv), codes)

    name = parser.prog if isinstance(parser, argparse.ArgumentParser) else prog
    return guarded(body, name, debug=debug_requested(argv))
