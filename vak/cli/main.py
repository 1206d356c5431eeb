"""``vak``: run signed skills, inspect them, serve them over MCP, play the demo.

Every subcommand that needs kernel state takes ``--config vak.toml`` (default:
``./vak.toml``); ``vak demo`` writes one. The command holds no logic the
library lacks: it maps flags onto :class:`vak.KernelConfig` and
:class:`vak.Kernel` calls and prints the result. A :class:`vak.VakError` is
caught once and printed as a message naming what and where (exit 1; a failed
tool call exits 3), never as a traceback.

Examples::

    vak demo --workdir /tmp/vak-demo
    vak run --config /tmp/vak-demo/vak.toml calculator__execute \\
        --input '{"operation": "add", "a": 1, "b": 2}'
    vak skills list --config /tmp/vak-demo/vak.toml
    vak mcp serve --config /tmp/vak-demo/vak.toml            # stdio
    vak mcp serve --config /tmp/vak-demo/vak.toml --http 8765
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vak.cli._common import EXIT_ERROR, EXIT_OK, run
from vak.errors import ConfigError, InputValidationError, ToolCallError

__all__ = ["build_parser", "main"]

EXIT_TOOL_FAILED = 3


def _kernel(args: argparse.Namespace) -> Any:
    from vak.kernel import Kernel

    path = Path(args.config)
    if not path.exists():
        raise ConfigError(
            f"{path}: config file not found", file=str(path),
            fix="pass --config DIR/vak.toml (run `vak demo` to create one)",
        )
    return Kernel.from_config(path)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _read_input(text: str) -> Any:
    where = "--input"
    if text.startswith("@"):
        where = text[1:]
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read input file: {exc.strerror}",
                              file=where) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputValidationError(
            f"{where}: input is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            fix="quote the JSON for your shell, e.g. --input '{\"a\": 1}', or use @file.json",
        ) from None


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


# ---------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    payload = _read_input(args.input)
    with _kernel(args) as kernel:
        name = args.tool
        if args.export is not None or Path(args.tool, "skill.yaml").exists():
            skill_dir = Path(args.tool)
            if args.export is None:
                raise ConfigError(f"{skill_dir}: give the export name after the skill dir",
                                  fix="vak run SKILL_DIR EXPORT --input JSON")
            loaded = {s.skill_dir for s in kernel.skills()}
            specs = () if str(skill_dir) in loaded else kernel.load_skill(skill_dir)
            skill = next((s.skill for s in specs), None) or _skill_name(kernel, skill_dir)
            name = f"{skill}__{args.export}"
        inv = kernel.invoke(name, payload, session=args.session)
    if args.json:
        _print_json(invocation_dict(inv))
    else:
        print(json.dumps(inv.output, indent=2, sort_keys=True))
        print(f"audit: seq {inv.audit_seq_started}..{inv.audit_seq_finished}  "
              f"fuel {inv.fuel_used}  {inv.duration_ms:.2f} ms  host calls {inv.host_calls}",
              file=sys.stderr)
    return EXIT_OK


def _skill_name(kernel: Any, skill_dir: Path) -> str:
    for skill in kernel.skills():
        if Path(skill.skill_dir).resolve() == skill_dir.resolve():
            return str(skill.name)
    raise ConfigError(f"{skill_dir}: not a loaded skill", skill_dir=str(skill_dir))


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
    with _kernel(args) as kernel:
        tools = kernel.tools()
        rows = [_skill_dict(s, tools) for s in kernel.skills()]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    print(f"{'SKILL':<14} {'VERSION':<9} {'TIER':<10} {'ROUTE':<7} TOOLS")
    for r in rows:
        print(f"{r['name']:<14} {r['version']:<9} {r['tier']:<10} {r['route']:<7} "
              f"{', '.join(r['tools'])}")
    if not rows:
        print("(no skills: add skill_dirs to the config)")
    return EXIT_OK


def cmd_skills_inspect(args: argparse.Namespace) -> int:
    with _kernel(args) as kernel:
        if Path(args.skill, "skill.yaml").exists() and args.skill not in {
            s.name for s in kernel.skills()
        }:
            kernel.load_skill(args.skill)
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
        _print_json(data)
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
def cmd_mcp_serve(args: argparse.Namespace) -> int:
    try:
        from vak.adapters import mcp as mcp_adapter
    except ImportError as exc:  # pragma: no cover - depends on extras
        raise ConfigError(f"the MCP adapter needs the 'mcp' extra: {exc}",
                          fix="pip install 'vak[mcp]'") from None
    with _kernel(args) as kernel:
        if args.http is not None:
            print(f"vak: MCP streamable HTTP on http://127.0.0.1:{args.http}/mcp",
                  file=sys.stderr)
            mcp_adapter.serve_http(kernel, args.http)
        else:
            mcp_adapter.serve_stdio(kernel)
    return EXIT_OK


# ---------------------------------------------------------------------- status
def status_dict(kernel: Any, config_path: str) -> dict[str, Any]:
    """What ``vak status`` reports: config, audit, skills, OS sandbox barriers."""
    cfg = kernel.config
    out: dict[str, Any] = {
        "config": config_path,
        "audit_log": str(cfg.resolved("audit_log")),
        "audit_fsync": cfg.audit_fsync,
        "require_signature": cfg.require_signature,
        "force_worker": cfg.force_worker,
        "skills": [{"name": s.name, "version": s.version, "tier": s.tier,
                    "route": "worker" if s.use_worker else "engine"}
                   for s in kernel.skills()],
        "tools": [t.name for t in kernel.tools()],
    }
    try:
        oslock = importlib.import_module("vak.sandbox.oslock")
        status = oslock.barrier_status()
        out["os_sandbox"] = status.to_dict() if hasattr(status, "to_dict") else (
            status if isinstance(status, dict) else repr(status))
    except ImportError:
        out["os_sandbox"] = {"available": False, "reason": "vak.sandbox.oslock not installed"}
    if hasattr(kernel, "sandbox_status"):
        out["sandbox"] = kernel.sandbox_status()
    versions = {}
    for mod in ("wasmtime", "cedarpy"):
        with contextlib.suppress(Exception):
            versions[mod] = importlib.metadata.version(mod)
    out["versions"] = versions
    return out


def cmd_status(args: argparse.Namespace) -> int:
    with _kernel(args) as kernel:
        data = status_dict(kernel, args.config)
    if args.json:
        _print_json(data)
        return EXIT_OK
    for key in ("config", "audit_log", "audit_fsync", "require_signature", "force_worker"):
        print(f"{key:<18} {data[key]}")
    print(f"{'tools':<18} {', '.join(data['tools']) or '(none)'}")
    print(f"{'os_sandbox':<18} {json.dumps(data['os_sandbox'], default=str)}")
    if "sandbox" in data:
        print(f"{'sandbox':<18} {json.dumps(data['sandbox'], default=str)}")
    print(f"{'versions':<18} {data['versions']}")
    return EXIT_OK


# ---------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from vak import demo

    report = demo.run_demo(args.workdir)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.render())
    return EXIT_OK if report.ok else EXIT_ERROR


# ---------------------------------------------------------------------- parser
def _policy_unavailable(args: argparse.Namespace) -> int:
    raise ConfigError("`vak policy` is not available in this build (vak.cli.policy missing)")


_RUN_EXAMPLES = """examples:
  vak run --config demo/vak.toml calculator__execute \\
      --input '{"operation": "add", "a": 1, "b": 2}'
  vak run --config demo/vak.toml notes__read --input @request.json --json
  vak run --config demo/vak.toml demo/skills/calculator execute --input '{...}'

The output goes to stdout; the audit sequence numbers, fuel and time to stderr
(with --json, everything as one object). A denied or failed call exits 3."""


def build_parser() -> argparse.ArgumentParser:
    """The ``vak`` argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="vak",
        description="The Verifiable Agent Kernel: run signed WebAssembly skills whose every "
        "host call is authorized by Cedar and recorded in a verifiable audit log.",
        epilog="Start with `vak demo`; it prints the commands to try next.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str,
            parent: Any = sub, config: bool = True, json_flag: bool = True,
            epilog: str = "") -> Any:
        p = parent.add_parser(name, help=help, description=help, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        if config:
            p.add_argument("--config", default="vak.toml", metavar="vak.toml",
                           help="kernel configuration (default: ./vak.toml)")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON instead of text")
        p.set_defaults(func=fn)
        return p

    p = add("run", cmd_run, "Invoke one tool through the kernel and print its output.",
            epilog=_RUN_EXAMPLES)
    p.add_argument("tool", metavar="TOOL",
                   help="wire name like calculator__execute, or a signed SKILL_DIR")
    p.add_argument("export", nargs="?", metavar="EXPORT",
                   help="export name when TOOL is a skill directory")
    p.add_argument("--input", default="{}", metavar="JSON|@file",
                   help="tool input as JSON, or @path to a JSON file (default: {})")
    p.add_argument("--session", default="cli", help="session id recorded in the audit log")

    skills = sub.add_parser("skills", help="List or inspect the loaded skills.",
                            description="List or inspect the skills a config loads.")
    ssub = skills.add_subparsers(dest="skills_command", metavar="ACTION", required=True)
    add("list", cmd_skills_list, "List loaded skills with tier, route and tools.", ssub)
    p = add("inspect", cmd_skills_inspect,
            "Show one skill: signer, digest, capabilities, limits, schemas.", ssub)
    p.add_argument("skill", metavar="SKILL", help="skill name, or a signed skill directory")

    try:
        policy_cli = importlib.import_module("vak.cli.policy")
    except ImportError:
        policy_cli = None
    if policy_cli is not None and hasattr(policy_cli, "register"):
        policy_cli.register(sub)
    else:
        add("policy", _policy_unavailable, "Validate and test Cedar policies (unavailable).")

    mcp = sub.add_parser("mcp", help="Serve the loaded tools over MCP.",
                         description="Serve the loaded tools over the Model Context Protocol.")
    msub = mcp.add_subparsers(dest="mcp_command", metavar="ACTION", required=True)
    p = add("serve", cmd_mcp_serve,
            "Serve over stdio, or streamable HTTP on 127.0.0.1 with --http PORT.",
            msub, json_flag=False)
    p.add_argument("--http", type=int, metavar="PORT",
                   help="serve streamable HTTP on 127.0.0.1:PORT/mcp instead of stdio")

    add("status", cmd_status, "Report configuration, skills and OS sandbox barriers.")

    p = add("demo", cmd_demo,
            "Build, sign and load the example skills, play a scripted agent session, "
            "verify the audit log.", config=False)
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="where to leave the demo state (default: a fresh temp dir)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vak`` console script; returns the exit code.

    Exit codes: 0 ok; 1 any other VakError (config, signature, policy, audit);
    2 usage or I/O error; 3 the tool call failed (denied, bad input, trapped,
    timed out); 130 interrupted.
    """
    return run(build_parser(), argv, {ToolCallError: EXIT_TOOL_FAILED})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
