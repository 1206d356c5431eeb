"""Shared plumbing for VAK's command-line tools.

Every CLI builds an ``argparse`` parser whose subcommands set
``func=handler`` (``handler(args) -> int``), then calls :func:`run`::

    parser = make_parser("vak-x", "Do X.", epilog=EXAMPLES)
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "check", "Check a thing.", check, json_flag=True)
    raise SystemExit(run(parser, argv, {ManifestError: 3}))

:func:`run` catches :class:`~vak.errors.VakError` once: it prints
``error: <message>`` plus the details (file, field, valid, fix) to stderr, or a
``{"ok": false, "error": ...}`` object to stdout with ``--json``, and returns
the exit code mapped for the most specific error class. Exit codes shared by
all tools: 0 ok, 1 other VakError, 2 usage or I/O error (argparse's own code),
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vak.errors import ConfigError, VakError

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_command",
    "emit",
    "exit_code_for",
    "make_parser",
    "read_secret",
    "run",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


def make_parser(prog: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """A parser that keeps the epilog's formatting (examples, exit-code tables)."""
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


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
        print(json.dumps({"ok": False, "exit_code": code, **exc.to_dict()}, indent=2))
    lines = exc.diagnostics().splitlines()
    print(f"error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(line, file=sys.stderr)


def run(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    codes: Mapping[type[BaseException], int],
) -> int:
    """Parse ``argv``, run the chosen handler, map failures to exit codes.

    Returns:
        the process exit code (never raises for expected failures).
    """
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        result: int = args.func(args)
        return result
    except VakError as exc:
        code = exit_code_for(exc, codes)
        _report(exc, code, as_json)
        return code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
