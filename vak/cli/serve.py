"""``vak serve`` (the kernel as an MCP service on N worker processes), its tokens,
and ``vak reload``.

Examples::

    vak serve token add ci-agent --token-file tokens.json   # prints the token once
    vak serve --config vak.toml --listen 127.0.0.1:8765 --workers 2 --token-file tokens.json
    vak reload --config vak.toml                            # or: kill -HUP <pid>

Everything is in docs/SERVE.md; the serving itself lives in :mod:`vak.serve`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vak.cli._common import EXIT_OK, Exit
from vak.cli._vak import add, print_json
from vak.errors import ConfigError

__all__ = ["register"]

_EXAMPLES = """examples:
  vak serve token add ci-agent --token-file tokens.json
  vak serve token list --token-file tokens.json

Then start it (it runs until SIGTERM or Ctrl-C, which drain it):
  $ vak serve --config vak.toml --workers 2 --token-file tokens.json
  $ vak serve --config vak.toml --listen 0.0.0.0:8765 --token-file tokens.json

MCP streamable HTTP at http://ADDR/mcp; /healthz and /readyz beside it.
SIGHUP or `vak reload --config vak.toml` reloads policies, trust store and tokens.
Without --token-file only loopback addresses may be served (exit 8 otherwise).
Each worker i writes its own log: audit/vak.log -> audit/vak-w<i>.log (docs/SERVE.md)."""


def register(sub: Any) -> None:
    """Add ``serve`` (with ``serve token ...``) and ``reload`` to the ``vak`` parser."""
    p = add(sub, "serve", cmd_serve, "Serve the tools over MCP streamable HTTP on N kernel "
            "worker processes, with bearer tokens, health, drain and reload.",
            json_flag=False, epilog=_EXAMPLES)
    p.add_argument("--listen", default="127.0.0.1:8765", metavar="ADDR:PORT",
                   help="IP address and port (default 127.0.0.1:8765; port 0 picks one)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="kernel worker processes (default: the CPU count)")
    p.add_argument("--token-file", type=Path, metavar="FILE",
                   help="bearer tokens (vak serve token add); required off loopback")
    p.add_argument("--drain-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long a drain waits for calls in flight (default 30)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="log lines as text or one JSON object each (stderr)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   default="info", help="also the level at which skills' log lines show")
    tsub = p.add_subparsers(dest="serve_command", metavar="ACTION", required=False)
    t = tsub.add_parser("token", help="Manage the bearer tokens of vak serve.",
                        description="Manage the bearer tokens of vak serve.")
    ttsub = t.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    for name, fn, text in (("add", cmd_token_add, "Create a token for NAME; print it once."),
                           ("list", cmd_token_list, "List token names (never tokens)."),
                           ("revoke", cmd_token_revoke, "Remove NAME's token.")):
        q = add(ttsub, name, fn, text, config=False, json_flag=True)
        if name != "list":
            q.add_argument("name", metavar="NAME", help="the caller (Cedar context.caller.id)")
        q.add_argument("--token-file", type=Path, required=True, metavar="FILE",
                       help="the token file (JSON, mode 0600; only hashes)")
        if name == "add":
            q.add_argument("--kind", default="agent", help="context.caller.kind (agent)")
    add(sub, "reload", cmd_reload, "Reload policies, trust store and tokens of the running "
        "vak serve of this config (like SIGHUP), and say whether every worker took it.",
        epilog="With `vak serve --config vak.toml` running:\n  $ vak reload --config vak.toml\n\n"
        "An invalid policy set is refused with exit 24 and the old one stays in force; "
        "exit 8 when no server runs for the config's state_dir.")


def cmd_serve(args: argparse.Namespace) -> int:
    from vak.config import KernelConfig
    from vak.serve.front import Front
    from vak.serve.logsetup import configure_logging
    from vak.serve.settings import ServeSettings, parse_listen
    from vak.serve.tokens import TokenFile

    try:
        import mcp  # noqa: F401 - the workers need both
        import uvicorn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on extras
        raise ConfigError(f"vak serve needs the 'mcp' extra: {exc}",
                          fix="pip install 'vak[mcp]'") from None
    config_path = Path(args.config)
    config = KernelConfig.from_toml(config_path)
    host, port = parse_listen(args.listen)
    settings = ServeSettings(config_path=config_path.resolve(),
                             state_dir=config.state_dir.resolve(), host=host, port=port,
                             workers=args.workers, token_file=args.token_file,
                             drain_timeout=args.drain_timeout, log_format=args.log_format,
                             log_level=args.log_level)
    _refuse_second_server(settings.state_dir)
    if settings.token_file is not None:
        TokenFile.load(settings.token_file)  # fail before any worker starts
    _check_policies(config)
    _prepare_keys(config)
    from vak.serve.naming import write_worker_pin

    for index in range(settings.workers):
        write_worker_pin(config, index)  # the operator's pin, under each worker's origin
    configure_logging(args.log_format, args.log_level, "front")
    front = Front(settings)
    return front.run()


def _refuse_second_server(state_dir: Path) -> None:
    """One server per state dir: a second one would only find its logs locked."""
    from vak.serve.control import read_state

    try:
        state = read_state(state_dir)
    except ConfigError:
        return  # none runs (or a stale file, which the new server replaces)
    raise ConfigError(f"a vak serve already runs for {state_dir} (pid {state['pid']}, "
                      f"{state.get('url', '')})", field="state_dir",
                      fix="stop it first (SIGTERM), or give this one its own state_dir")


def _check_policies(config: Any) -> None:
    from vak.policy.loader import load_policies

    load_policies(config.policy_settings().policy_dirs)


def _prepare_keys(config: Any) -> None:
    """Create the shared log and digest keys once, before the workers race to."""
    from vak.audit.keys import load_or_create_private_key
    from vak.identity.keyfile import load_or_create_secret

    audit = config.audit_settings()
    audit.key.parent.mkdir(parents=True, exist_ok=True)
    load_or_create_private_key(audit.key)
    audit.hmac_key.parent.mkdir(parents=True, exist_ok=True)
    load_or_create_secret(audit.hmac_key)


def cmd_token_add(args: argparse.Namespace) -> int:
    from vak.serve.tokens import TokenFile

    token = TokenFile.load_or_empty(args.token_file).add(args.name, args.kind)
    if args.json:
        print_json({"name": args.name, "token": token, "token_file": str(args.token_file)})
    else:
        print(token)
        print(f"(shown once; {args.token_file} keeps only its hash. Clients send "
              "'Authorization: Bearer <token>'.)", file=sys.stderr)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    from vak.serve.tokens import TokenFile

    entries = TokenFile.load(args.token_file).entries
    if args.json:
        print_json([{"name": e.name, "kind": e.kind, "created": e.created} for e in entries])
    else:
        for e in entries:
            print(f"{e.name:<24} {e.kind:<8} {e.created}")
        if not entries:
            print("(no tokens)")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from vak.serve.tokens import TokenFile

    TokenFile.load(args.token_file).revoke(args.name)
    print(f"revoked {args.name}; a running server drops it at its next reload",
          file=sys.stderr)
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    from vak.config import KernelConfig
    from vak.serve.control import ask, error_from, read_state

    config_path = Path(args.config)
    if not config_path.exists():
        raise ConfigError(f"{config_path}: config file not found", file=str(config_path))
    config = KernelConfig.from_toml(config_path)
    _check_policies(config)  # an invalid set: exit 24 here, naming file and line
    answer = ask(read_state(config.state_dir.resolve()), "reload")
    if answer.get("ok") and args.json:
        print(json.dumps(answer, indent=2))
    if answer.get("ok"):
        if not args.json:
            for w in answer.get("workers", []):
                print(f"worker {w.get('worker')}: policy set {w.get('policy_set')} "
                      f"(audit seq {w.get('audit_seq')})")
        return EXIT_OK
    for w in answer.get("workers", []):
        if not w.get("ok"):
            body = w.get("error")
            raise error_from(body if isinstance(body, dict) else
                             {"message": str(w.get("message", "reload failed"))})
    return int(Exit.ERROR)
