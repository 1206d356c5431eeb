"""``vak skill new|build|sign|test``: write a skill anywhere, with nothing but the wheel.

* ``new NAME --lang c|zig|python|js|ts`` writes ``NAME/skill.yaml`` and a source file;
* ``build [DIR]`` builds one skill or a tree with the packaged SDK (Zig from
  the ``build`` extra), validating each manifest first;
* ``sign DIR --key KEY`` fills in the module digest and signs ``skill.yaml``;
* ``test DIR --input JSON`` builds the skill if needed and makes one call in a
  throw-away *development* kernel: its own temporary state, the shipped
  policies (plus ``--policy-dir``), ``require_signature = false``. The skill
  therefore runs unsigned, as untrusted, in the OS-sandboxed worker, and the
  audit log's ``skill_loaded`` entry says ``"dev_mode": true``. A production
  config (``require_signature = true``, the default) never loads an unsigned
  skill; ``vak skill test`` never touches a config or its state.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from vak.cli._vak import add, group, invocation_dict, print_json, read_input
from vak.errors import ConfigError

__all__ = ["register"]

_EXAMPLES = """examples:
  vak skill new hello --lang c
  vak skill build hello
  vak skill test hello --input '{"name": "Ada"}'
  vak skill sign hello --key keys/author.key"""


def cmd_new(args: argparse.Namespace) -> int:
    from vak.scaffold import new_skill, source_name

    skill = new_skill(Path(args.dir), args.name, args.lang, author=args.author,
                      force=args.force)
    print(f"wrote {skill}/skill.yaml and {skill}/{source_name(args.name, args.lang)}")
    print("next:")
    print(f"  vak skill build {skill}")
    print(f"  vak skill test {skill} --input '{{\"name\": \"Ada\"}}'")
    print(f"  vak skill sign {skill} --key KEY      (vak init --author writes a key)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from vak.skillbuild import build_all, stale

    root = Path(args.dir)
    if args.check:
        todo = stale(root, validate=True)
        for target in todo:
            print(f"stale: {target.module}")
        return 1 if todo else 0
    built = build_all(root, validate=True)
    for module in built:
        print(f"built: {module}")
    if not built:
        print(f"up to date: {root}")
    return 0


def _skill_dir(text: str) -> Path:
    path = Path(text)
    if not (path / "skill.yaml").is_file():
        raise ConfigError(f"{path}: no skill.yaml in this directory", file=str(path),
                          fix="pass the skill's directory (vak skill new NAME writes one)")
    return path


def _export_name(skill: Path, export: str | None) -> str:
    from vak.identity.manifest import load_manifest

    manifest = load_manifest(skill)
    names = [e.name for e in manifest.exports]
    if export is None:
        if len(names) == 1:
            return names[0]
        raise ConfigError(f"{skill}/skill.yaml: the skill has several exports; choose one",
                          file=f"{skill}/skill.yaml", field="--export", valid=names)
    if export not in names:
        raise ConfigError(f"{skill}/skill.yaml: no export named {export!r}",
                          file=f"{skill}/skill.yaml", field="exports", valid=names)
    return export


def _mounts(specs: list[str]) -> dict[str, str]:
    mounts = {}
    for spec in specs:
        guest, sep, host = spec.partition("=")
        if not sep or not guest.startswith("/") or not host:
            raise ConfigError(f"--mount {spec!r}: expected GUEST=HOST, e.g. /workspace=data",
                              field="--mount", fix="--mount /workspace=./data")
        if not Path(host).is_dir():
            raise ConfigError(f"--mount {spec!r}: {host} is not a directory", field="--mount",
                              file=host)
        mounts[guest] = str(Path(host).resolve())
    return mounts


def _dev_config(state: Path, args: argparse.Namespace) -> Any:
    from vak.config import KernelConfig

    return KernelConfig.from_mapping(
        {"state_dir": str(state), "require_signature": False,
         "policy_dirs": [str(Path(p).resolve()) for p in args.policy_dir],
         "host": {"fs_mounts": _mounts(args.mount)}},
        base=state, source="<vak skill test development kernel>")


def cmd_test(args: argparse.Namespace) -> int:
    from vak.kernel import Kernel
    from vak.skillbuild import build_all

    skill = _skill_dir(args.skill)
    payload = read_input(args.input)
    if not args.no_build:
        build_all(skill, validate=True)
    export = _export_name(skill, args.export)
    state = Path(tempfile.mkdtemp(prefix="vak-skill-test-"))
    try:
        with Kernel(_dev_config(state, args)) as kernel:
            specs = kernel.load_skill(skill)
            name = next(s.name for s in specs if s.name.endswith(f"__{export}"))
            inv = kernel.invoke(name, payload, session="skill-test")
            log = Path(kernel.audit.path)
    finally:
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    where = f"audit log kept at {log}" if args.keep else "state deleted (--keep keeps it)"
    if args.json:
        print_json({**invocation_dict(inv), "dev_mode": True,
                    "audit_log": str(log) if args.keep else None})
    else:
        print_json(inv.output)
        print(f"dev kernel: unsigned skill, dev_mode recorded in the audit log; "
              f"fuel {inv.fuel_used}  {inv.duration_ms:.2f} ms  host calls "
              f"{inv.host_calls}; {where}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """Add ``vak skill ...`` to the ``vak`` subparsers."""
    from vak.cli import skill_sign
    from vak.scaffold import LANGS

    ssub = group(sub, "skill",
                 "Write, build, sign and test a skill (C, Zig, Python or JavaScript).",
                 epilog=_EXAMPLES)

    p = add(ssub, "new", cmd_new,
            "Write NAME/skill.yaml and a C, Zig, Python or JavaScript source to start from.",
            config=False, json_flag=False,
            epilog="example:\n  vak skill new hello --lang zig --dir skills")
    p.add_argument("name", metavar="NAME", help="skill name: a-z first, then a-z 0-9 _ -")
    p.add_argument("--lang", choices=LANGS, default="c", help="source language (default: c)")
    p.add_argument("--dir", default=".", metavar="PARENT",
                   help="directory to create the skill in (default: .)")
    p.add_argument("--author", default="me", help="author recorded in skill.yaml")
    p.add_argument("--force", action="store_true", help="overwrite existing files")

    p = add(ssub, "build", cmd_build,
            "Build one skill, or every skill under DIR, with the packaged SDK.",
            config=False, json_flag=False,
            epilog="examples:\n  vak skill build skills/calculator\n"
            "  vak skill build skills --check")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR",
                   help="a skill directory or a tree of them (default: .)")
    p.add_argument("--check", action="store_true",
                   help="build nothing; exit 1 if a module is missing or stale")

    p = add(ssub, "sign", skill_sign._sign,
            "Fill in the module digest and sign skill.yaml in place.", config=False,
            json_flag=False,
            epilog="example:\n  vak skill sign skills/calculator --key keys/author.key")
    p.add_argument("skill_dir", metavar="DIR", help="the skill directory")
    p.add_argument("--key", required=True, metavar="KEY",
                   help="private key: written by `vak init --author` or "
                   "`vak-skill-sign keygen`, or an OpenSSH ed25519 key")
    skill_sign._add_passphrase_flags(p)

    p = add(ssub, "test", cmd_test,
            "Build the skill if needed and make one call in a throw-away development kernel "
            "(unsigned, marked dev_mode in its audit log).", config=False,
            epilog="examples:\n  vak skill test skills/calculator "
            "--input '{\"operation\": \"add\", \"a\": 1, \"b\": 2}'\n"
            "  vak skill test skills/calculator --input @input.json --keep --json")
    p.add_argument("skill", metavar="DIR", help="the skill directory")
    p.add_argument("--input", default="{}", metavar="JSON|@file",
                   help="tool input as JSON, or @path to a JSON file (default: {})")
    p.add_argument("--export", metavar="NAME",
                   help="export to call (default: the only one the manifest declares)")
    p.add_argument("--policy-dir", action="append", default=[], metavar="DIR",
                   help="operator policies to add to the shipped ones (repeatable)")
    p.add_argument("--mount", action="append", default=[], metavar="GUEST=HOST",
                   help="expose directory HOST to the skill at guest path GUEST, e.g. "
                   "/workspace=./data (repeatable; policy still decides each access)")
    p.add_argument("--keep", action="store_true",
                   help="keep the development kernel's state (audit log) and print where")
    p.add_argument("--no-build", action="store_true", help="do not build before the call")
