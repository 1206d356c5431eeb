"""``vak``: set up a kernel, write and test skills, run them, serve them, play the demo.

Every subcommand that needs kernel state takes ``--config vak.toml`` (default:
``./vak.toml``); ``vak init`` and ``vak demo`` write one. The command holds no
logic the library lacks: it maps flags onto :class:`vak.KernelConfig` and
:class:`vak.Kernel` calls and prints the result. Failures exit with the codes
of the one table all three commands share (docs/CLI.md, :class:`vak.cli._common.Exit`),
never with a traceback (``--debug`` shows one for an internal error).

Examples::

    vak demo --workdir /tmp/vak-demo
    vak run --config /tmp/vak-demo/vak.toml calculator__execute \\
        --input '{"operation": "add", "a": 1, "b": 2}'
    vak init mykernel --author && vak skill new hello --dir mykernel/skills
    vak skills list --config /tmp/vak-demo/vak.toml
    vak mcp serve --config /tmp/vak-demo/vak.toml            # stdio
    vak mcp serve --config /tmp/vak-demo/vak.toml --http 8765
    vak serve --config /tmp/vak-demo/vak.toml --workers 2 --token-file tokens.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vak.cli import approvals as approvals_cli
from vak.cli import init as init_cli
from vak.cli import policy as policy_cli
from vak.cli import serve as serve_cli
from vak.cli import skill as skill_cli
from vak.cli import status as status_cli
from vak.cli import trust as trust_cli
from vak.cli import witness as witness_cli
from vak.cli._common import ERROR_CODES, EXIT_ERROR, EXIT_OK, add_standard_flags, run
from vak.cli._vak import add, group, invocation_dict, open_kernel, print_json, read_input
from vak.errors import ConfigError

__all__ = ["build_parser", "invocation_dict", "main", "status_dict"]

status_dict = status_cli.status_dict


# ---------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    payload = read_input(args.input)
    with open_kernel(args.config) as kernel:
        name = args.tool
        if args.export is not None or Path(args.tool, "skill.yaml").exists():
            skill_dir = Path(args.tool)
            if args.export is None:
                raise ConfigError(f"{skill_dir}: give the export name after the skill dir",
                                  fix="vak run SKILL_DIR EXPORT --input JSON")
            name = f"{_ensure_loaded(kernel, skill_dir)}__{args.export}"
        inv = kernel.invoke(name, payload, session=args.session)
    if args.json:
        print_json(invocation_dict(inv))
    else:
        print(json.dumps(inv.output, indent=2, sort_keys=True))
        print(f"audit: seq {inv.audit_seq_started}..{inv.audit_seq_finished}  "
              f"fuel {inv.fuel_used}  {inv.duration_ms:.2f} ms  host calls {inv.host_calls}",
              file=sys.stderr)
    return EXIT_OK


def _ensure_loaded(kernel: Any, skill_dir: Path) -> str:
    """The name of the skill in ``skill_dir``, loading it unless the config already did."""
    wanted = skill_dir.resolve()
    for skill in kernel.skills():
        if Path(skill.skill_dir).resolve() == wanted:
            return str(skill.name)
    specs = kernel.load_skill(skill_dir)
    if not specs:
        raise ConfigError(f"{skill_dir}/skill.yaml: the skill declares no exports",
                          file=f"{skill_dir}/skill.yaml", field="exports")
    return str(specs[0].skill)


# ---------------------------------------------------------------------- skills
def _skill_dict(skill: Any, tools: Sequence[Any]) -> dict[str, Any]:
    caps = skill.manifest.capabilities
    return {
        "name": skill.name, "version": skill.version, "tier": skill.tier,
        "signer": skill.signer_key_id, "module_sha256": skill.module_sha256,
        "route": "worker" if skill.use_worker else "engine", "dir": skill.skill_dir,
        "tools": [t.name for t in tools if t.skill == skill.name],
        "capabilities": {k: getattr(caps, k) for k in caps.__slots__ if getattr(caps, k)},
        "limits": {k: getattr(skill.manifest.limits, k)
                   for k in skill.manifest.limits.__slots__},
    }


def cmd_skills_list(args: argparse.Namespace) -> int:
    with open_kernel(args.config, read_only=True) as kernel:
        tools = kernel.tools()
        rows = [_skill_dict(s, tools) for s in kernel.skills()]
        refused = kernel.refused_skills()
    if args.json:
        print_json(rows)
        return EXIT_OK
    print(f"{'SKILL':<14} {'VERSION':<9} {'TIER':<10} {'ROUTE':<7} TOOLS")
    for r in rows:
        print(f"{r['name']:<14} {r['version']:<9} {r['tier']:<10} {r['route']:<7} "
              f"{', '.join(r['tools'])}")
    for f in refused:  # bounded and escaped by the kernel
        print(f"{'REFUSED':<14} {f.path}: {f.error}: {f.message}")
    if not rows and not refused:
        print("(no skills: add skill_dirs to the config)")
    return EXIT_OK


def cmd_skills_inspect(args: argparse.Namespace) -> int:
    with open_kernel(args.config, read_only=True) as kernel:
        if Path(args.skill, "skill.yaml").exists():
            args.skill = _ensure_loaded(kernel, Path(args.skill))
        tools = kernel.tools()
        skill = next((s for s in kernel.skills()
                      if args.skill in (s.name, s.skill_dir)), None)
        if skill is None:
            raise ConfigError(f"no loaded skill named {args.skill!r}",
                              valid=[s.name for s in kernel.skills()])
        data = _skill_dict(skill, tools)
        data["exports"] = [
            {"tool": t.name, "description": t.description,
             "input_schema": _plain(t.input_schema), "output_schema": _plain(t.output_schema)}
            for t in tools if t.skill == skill.name
        ]
    if args.json:
        print_json(data)
        return EXIT_OK
    for key in ("name", "version", "tier", "route", "signer", "module_sha256", "dir"):
        print(f"{key:<14} {data[key]}")
    print(f"{'capabilities':<14} {json.dumps(data['capabilities'], default=list)}")
    print(f"{'limits':<14} {json.dumps(data['limits'])}")
    for e in data["exports"]:
        print(f"\n{e['tool']}: {e['description']}")
        print(f"  input:  {json.dumps(e['input_schema'])}")
        print(f"  output: {json.dumps(e['output_schema'])}")
    return EXIT_OK


def _plain(value: Any) -> Any:
    from vak.invocation import thaw

    return thaw(value)


# ---------------------------------------------------------------------- mcp
def _approver_key(args: argparse.Namespace) -> Any:
    """``--approver-key``: signs answers a person gives through MCP elicitation."""
    if not getattr(args, "approver_key", None):
        return None
    from vak.identity.keys import load_signing_key

    return load_signing_key(args.approver_key)


def cmd_mcp_serve(args: argparse.Namespace) -> int:
    try:
        from vak.adapters import mcp as mcp_adapter
    except ImportError as exc:  # pragma: no cover - depends on extras
        raise ConfigError(f"the MCP adapter needs the 'mcp' extra: {exc}",
                          fix="pip install 'vak[mcp]'") from None
    with open_kernel(args.config) as kernel:
        if args.http is not None:
            print(f"vak: MCP streamable HTTP on http://127.0.0.1:{args.http}/mcp",
                  file=sys.stderr)
            mcp_adapter.serve_http(kernel, args.http, approver_key=_approver_key(args))
        else:
            mcp_adapter.serve_stdio(kernel, approver_key=_approver_key(args))
    return EXIT_OK


# ---------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from vak import demo

    def progress(message: str) -> None:  # stderr: --json keeps stdout one object
        print(f"vak demo: {message}", file=sys.stderr, flush=True)

    report = demo.run_demo(args.workdir, cache_dir=args.cache_dir or _demo_cache(),
                           progress=progress)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.render())
    return EXIT_OK if report.ok else EXIT_ERROR


def _demo_cache() -> Path:
    """Where `vak demo` keeps its slow builds: $VAK_CACHE_DIR, else the XDG cache."""
    explicit = os.environ.get("VAK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vak"


# ---------------------------------------------------------------------- parser
_RUN_EXAMPLES = """examples:
  vak run --config demo/vak.toml calculator__execute \\
      --input '{"operation": "add", "a": 1, "b": 2}'
  vak run --config demo/vak.toml notes__read --input @request.json --json
  vak run --config demo/vak.toml demo/skills/calculator execute \\
      --input '{"operation": "subtract", "a": 5, "b": 2}'

The output goes to stdout; the audit sequence numbers, fuel and time to stderr
(with --json, everything as one object). Exit codes (docs/CLI.md): 20 a host call
was denied by policy, 21 the input is not JSON or fails the schema, 22 no such
tool, 23 the call failed in the sandbox (trap, deadline, fuel, output)."""

_EPILOG = """getting started:
  vak demo                           # the whole product in one scripted session
  vak init mykernel --author         # a kernel directory with a trusted author key
  vak skill new hello --lang c       # a skill to build, test and sign
  vak status                         # what this machine supports

Exit codes, shared with vak-skill-sign and vak-audit: docs/CLI.md."""


def build_parser() -> argparse.ArgumentParser:
    """The ``vak`` argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="vak",
        description="The Verifiable Agent Kernel: run signed WebAssembly skills whose every "
        "host call is authorized by Cedar and recorded in a verifiable audit log.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_standard_flags(parser, "vak")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init_cli.register(sub)
    skill_cli.register(sub)
    trust_cli.register(sub)

    p = add(sub, "run", cmd_run, "Invoke one tool through the kernel and print its output.",
            epilog=_RUN_EXAMPLES)
    p.add_argument("tool", metavar="TOOL",
                   help="wire name like calculator__execute, or a signed SKILL_DIR")
    p.add_argument("export", nargs="?", metavar="EXPORT",
                   help="export name when TOOL is a skill directory")
    p.add_argument("--input", default="{}", metavar="JSON|@file",
                   help="tool input as JSON, or @path to a JSON file (default: {})")
    p.add_argument("--session", default="cli", help="session id recorded in the audit log")

    ssub = group(sub, "skills", "List or inspect the skills a config loads.",
                 epilog="examples:\n  vak skills list --config demo/vak.toml\n"
                 "  vak skills inspect calculator --config demo/vak.toml --json")
    add(ssub, "list", cmd_skills_list, "List loaded skills with tier, route and tools.")
    p = add(ssub, "inspect", cmd_skills_inspect,
            "Show one skill: signer, digest, capabilities, limits, schemas.")
    p.add_argument("skill", metavar="SKILL", help="skill name, or a signed skill directory")

    policy_cli.register(sub)

    approvals_cli.register(sub)

    msub = group(sub, "mcp", "Serve the loaded tools over the Model Context Protocol.")
    p = add(msub, "serve", cmd_mcp_serve,
            "Serve over stdio, or streamable HTTP on 127.0.0.1 with --http PORT.",
            json_flag=False)
    p.add_argument("--http", type=int, metavar="PORT",
                   help="serve streamable HTTP on 127.0.0.1:PORT/mcp instead of stdio")
    p.add_argument("--approver-key", metavar="OPERATOR_KEY",
                   help="ask the person through MCP elicitation when a call needs approval, "
                   "and sign the answer with this key (an approver in the trust store)")

    serve_cli.register(sub)
    status_cli.register(sub)
    witness_cli.register(sub)

    p = add(sub, "demo", cmd_demo,
            "Build, sign and load the example skills, play a scripted agent session, "
            "verify the audit log.", config=False,
            epilog="examples:\n  vak demo\n  vak demo --workdir vak-demo --json")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="where to leave the demo state (default: a fresh temp dir)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="where the Python skill's build and compiled form are kept for "
                   "later runs (default: $VAK_CACHE_DIR, else ~/.cache/vak)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vak`` console script; returns the exit code (docs/CLI.md)."""
    return run(build_parser, argv, ERROR_CODES, prog="vak")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
