"""``vak witness``: run a C2SP tlog-witness, make its key.

Registered into ``vak``'s parser by :func:`register`::

    vak witness keygen --name witness.example/w1 --key w1.key      # writes w1.key.pub
    vak witness serve --name witness.example/w1 --key w1.key \\
        --logs kernels.pub --state w1.db --listen 127.0.0.1:7380

``--logs`` lists the verifier keys of the logs this witness accepts (the
kernels' ``log.key.pub`` lines, concatenated). ``serve`` prints
``listening on http://HOST:PORT`` once it accepts requests, then serves
until interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vak.audit.keys import load_or_create_private_key, load_trusted_keys, public_path_for
from vak.errors import ConfigError

__all__ = ["register"]


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"--listen {text!r}: want HOST:PORT", field="--listen")
    return host or "127.0.0.1", int(port)


def _cmd_keygen(args: argparse.Namespace) -> int:
    from vak.witness.cosignature import witness_key_of

    key = load_or_create_private_key(args.key)
    vkey = witness_key_of(args.name, key).vkey
    public_path_for(args.key).write_text(vkey + "\n", encoding="utf-8")
    print(vkey)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from vak.witness.server import Witness, make_server

    host, port = _listen(args.listen)
    witness = Witness(args.name, load_or_create_private_key(args.key),
                      load_trusted_keys(args.logs), Path(args.state))
    server = make_server(witness, host, port, args.prefix)
    bound_host, bound_port = server.server_address[:2]
    print(f"listening on http://{bound_host!s}:{bound_port}{args.prefix}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
    finally:
        server.server_close()
        witness.close()
    return 0


def register(sub: Any) -> None:
    """Add ``vak witness keygen`` and ``vak witness serve`` to ``vak``'s subcommands."""
    w = sub.add_parser("witness", help="Run a C2SP tlog-witness that cosigns kernels' "
                       "checkpoints.", description=__doc__.split("\n")[0])
    wsub = w.add_subparsers(dest="witness_command", metavar="ACTION", required=True)
    k = wsub.add_parser("keygen", help="Create the witness key (if absent); print its vkey.")
    k.add_argument("--name", required=True, help="witness name, e.g. witness.example/w1")
    k.add_argument("--key", required=True, help="private key file (0600), created on first use")
    k.set_defaults(func=_cmd_keygen)
    s = wsub.add_parser("serve", help="Serve POST <prefix>/add-checkpoint.")
    s.add_argument("--name", required=True, help="witness name (the cosignature key name)")
    s.add_argument("--key", required=True, help="private key file (from `vak witness keygen`)")
    s.add_argument("--logs", required=True, help="verifier keys of the logs to witness")
    s.add_argument("--state", required=True, help="SQLite file of the cosigned checkpoints")
    s.add_argument("--listen", default="127.0.0.1:7380", help="HOST:PORT (default %(default)s)")
    s.add_argument("--prefix", default="", help="URL prefix before /add-checkpoint")
    s.set_defaults(func=_cmd_serve)
