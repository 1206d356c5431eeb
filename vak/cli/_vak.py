"""Pieces the ``vak`` subcommands share: adding a command, opening a kernel, reading input.

Each ``vak`` subcommand module (``init``, ``skill``, ``status`` ...) exposes
``register(subparsers)`` and builds its parsers with :func:`add`, so every
command gets the same ``--config`` and ``--json`` flags with help text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vak.cli._common import add_command
from vak.errors import ConfigError, InputValidationError

__all__ = ["DEFAULT_CONFIG", "add", "group", "invocation_dict", "open_kernel", "print_json",
           "read_input"]

#: where every command looks for the kernel configuration unless --config says otherwise
DEFAULT_CONFIG = "vak.toml"

Handler = Callable[[argparse.Namespace], int]


def add(sub: Any, name: str, fn: Handler, help: str, *, config: bool = True,
        json_flag: bool = True, epilog: str = "") -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``fn`` (with ``--config`` and ``--json`` by default)."""
    p = add_command(sub, name, help, fn, epilog=epilog, json_flag=json_flag)
    if config:
        p.add_argument("--config", default=DEFAULT_CONFIG, metavar="vak.toml",
                       help="kernel configuration (default: ./vak.toml)")
    return p


def group(sub: Any, name: str, help: str, epilog: str = "") -> Any:
    """Add a command ``name`` that only holds subcommands (``vak skill new`` ...)."""
    p = sub.add_parser(name, help=help, description=help, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    return p.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def open_kernel(config: str | Path, *, read_only: bool = False) -> Any:
    """A :class:`vak.Kernel` from ``config``.

    ``read_only``: for commands that only report (``vak status``, ``vak skills``):
    the kernel takes no lock on the audit log and appends nothing, so it works
    while a server runs on the same state, and leaves no trace.

    Raises:
        ConfigError: the file does not exist (the fix names ``vak init``).
    """
    from vak.kernel import Kernel

    path = Path(config)
    if not path.exists():
        raise ConfigError(
            f"{path}: config file not found", file=str(path),
            fix="pass --config DIR/vak.toml, or create one with `vak init DIR` "
            "(`vak demo` also writes one)",
        )
    kernel = Kernel.from_config(path, read_only=read_only)
    if not read_only:  # a read-only command reports them itself
        for refused in kernel.refused_skills():  # text already bounded and escaped
            print(f"vak: skill refused (audit seq {refused.audit_seq}): {refused.path}: "
                  f"{refused.error}: {refused.message}", file=sys.stderr)
    return kernel


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def read_input(text: str) -> Any:
    """Tool input from ``--input``: JSON text, or ``@path`` to a JSON file.

    Raises:
        InputValidationError: not JSON (the message says where and how to quote it).
        ConfigError: the ``@file`` cannot be read.
    """
    where = "--input"
    if text.startswith("@"):
        where = text[1:]
        try:
            text = Path(where).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"{where}: cannot read input file: {reason}", file=where,
                              field="--input", fix="pass @PATH to a readable JSON file"
                              ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputValidationError(
            f"{where}: input is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field="--input",
            fix="quote the JSON for your shell, e.g. --input '{\"a\": 1}', or use @file.json",
        ) from None
    except RecursionError:
        raise InputValidationError(f"{where}: input is nested too deeply", field="--input",
                                   fix="flatten the input") from None


def invocation_dict(inv: Any) -> dict[str, Any]:
    """The JSON form of an :class:`vak.Invocation` (``--json`` output)."""
    return {
        "tool": inv.tool, "output": inv.output, "fuel_used": inv.fuel_used,
        "duration_ms": round(inv.duration_ms, 3), "host_calls": inv.host_calls,
        "invocation_id": inv.invocation_id, "session": inv.session,
        "audit_seq_started": inv.audit_seq_started,
        "audit_seq_finished": inv.audit_seq_finished, "leaf_hash": inv.leaf_hash,
        "worker": inv.worker,
    }
