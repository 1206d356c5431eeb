"""``vak init [DIR]``: a working kernel directory in one command.

It writes a commented ``vak.toml`` (every option, its default and its
meaning, generated from the settings dataclasses), a trust store, a
``policies/`` directory with an operator policy template and an empty
``skills/``; with ``--author`` also an author signing key, trusted at tier
trusted. It then prints what to do next. See :mod:`vak.scaffold`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vak.cli._vak import add, print_json

__all__ = ["cmd_init", "register"]


def cmd_init(args: argparse.Namespace) -> int:
    from vak.scaffold import init_dir

    result = init_dir(Path(args.dir), author=args.author, force=args.force)
    if args.json:
        print_json({"directory": str(result.directory), "config": str(result.config),
                    "trust_store": str(result.trust_store), "policy": str(result.policy),
                    "author_key": str(result.author_key) if result.author_key else None,
                    "author_key_id": result.author_key_id or None,
                    "written": [str(p) for p in result.written]})
        return 0
    for path in result.written:
        print(f"wrote {path}")
    d = result.directory
    cfg = result.config
    key = result.author_key or Path("KEY")
    print(f"\nnext (a kernel directory in {d}):")
    if result.author_key is None:
        print(f"  vak-skill-sign keygen --out {d}/keys/author.key "
              "   # or rerun with --author")
        print(f"  vak trust add {d}/keys/author.key.pub --tier trusted --config {cfg}")
    else:
        print(f"  author key {result.author_key_id} is trusted (tier trusted)")
    print(f"  vak skill new hello --lang c --dir {result.skills}")
    print(f"  vak skill build {result.skills}/hello")
    print(f"  vak skill test {result.skills}/hello --input '{{\"name\": \"Ada\"}}'")
    print(f"  vak skill sign {result.skills}/hello --key {key}")
    print(f"  add \"skills/hello\" to skill_dirs in {cfg}, then:")
    print(f"  vak run --config {cfg} hello__execute --input '{{\"name\": \"Ada\"}}'")
    print(f"  vak-audit verify --config {cfg}")
    return 0


def register(sub: Any) -> None:
    """Add ``vak init`` to the ``vak`` subparsers."""
    p = add(sub, "init", cmd_init,
            "Write vak.toml, a trust store, policies/ and skills/ (with --author also a "
            "trusted signing key) and print what to do next.", config=False,
            epilog="examples:\n  vak init mykernel --author\n  vak init mykernel --force")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR",
                   help="directory to set up (created if missing; default: .)")
    p.add_argument("--author", action="store_true",
                   help="also write keys/author.key and trust it at tier trusted")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
