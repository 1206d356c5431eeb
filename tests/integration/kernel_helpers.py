"""Shared helpers for the kernel integration tests (imported by conftest and tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vak.kernel import Kernel
    from vak.policy.loader import LoadedPolicies

HELLO = "/workspace/hello.txt"
FORBID_HELLO = f"""
@id("ops.forbid-hello")
forbid (principal, action == Vak::Action::"fs_read", resource)
when {{ resource.path == "{HELLO}" }};
"""


@dataclass(frozen=True)
class DemoState:
    workdir: Path
    config: Path
    port: int

    @property
    def log(self) -> Path:
        return self.workdir / "audit" / "vak.log"

    @property
    def log_pub(self) -> Path:
        return self.workdir / "audit" / "log.key.pub"



@dataclass(frozen=True)
class Reloaded:
    """A log whose kernel reloaded its policy set twice (first -> second -> first)."""

    log: Path
    first: LoadedPolicies
    second: LoadedPolicies
    #: the policy directories of ``first`` (shipped first); ``second`` adds ``extra``
    dirs: list[Path]
    extra: Path


def reload_policies(k: Kernel, loaded: LoadedPolicies) -> None:
    """What ``Kernel.reload()`` does for the policy part (contract 2): record the new
    set through the kernel's audit writer, then decide with it."""
    from vak.policy.loader import policy_set_record

    k._audit_log.append("policy_set", policy_set_record(loaded), flush=True)  # type: ignore[union-attr]
    k._mediator_obj.engine.reload(loaded)  # type: ignore[union-attr]


def verify(state: DemoState) -> Any:
    """Verify the state's audit log offline; returns the report."""
    from vak.audit.keys import load_trusted_keys
    from vak.audit.verify import verify_log

    return verify_log(state.log, load_trusted_keys(state.log_pub))


#: a bump allocator over ``$heap``: the ``vak_alloc`` export of the test modules here
ALLOC_WAT = r"""
  (func (export "vak_alloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
"""

#: a stateful skill: ``execute`` counts its calls in a global and answers
#: ``{"n":D}`` with D = count mod 10; ``trap`` always traps. A fresh instance
#: answers 1; only a reused one answers 2, 3, ...
COUNTER_WAT = r"""
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (global $count (mut i32) (i32.const 0))
  (data (i32.const 16) "{\"n\":0}")
""" + ALLOC_WAT + r"""  (func (export "execute") (param i32 i32) (result i64)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.store8 (i32.const 21)
      (i32.add (i32.const 48) (i32.rem_u (global.get $count) (i32.const 10))))
    (i64.const 68719476743))
  (func (export "trap") (param i32 i32) (result i64) unreachable))
"""


def wat_skill(state: DemoState, root: Path, name: str, wat: str,
              exports: tuple[str, ...] = ("execute",), **manifest: Any) -> Path:
    """A skill ``name`` built from ``wat``, signed with the demo key (trusted by the demo);
    ``manifest`` replaces top-level manifest fields (capabilities, limits, ...)."""
    import wasmtime
    import yaml
    from signing_helpers import TEMPLATE

    from vak.identity.keys import load_signing_key
    from vak.identity.signing import sign_skill

    skill = root / name
    skill.mkdir(parents=True, exist_ok=True)

    def export(export_name: str) -> dict[str, object]:  # separate dicts: no YAML aliases
        return {"name": export_name, "description": export_name,
                "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}

    doc = {**TEMPLATE, "name": name, "module": {"path": f"{name}.wasm"},
           "capabilities": {}, "limits": {"max_fuel": 100000, "max_host_calls": 0},
           "exports": [export(e) for e in exports], **manifest}
    (skill / "skill.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (skill / f"{name}.wasm").write_bytes(wasmtime.wat2wasm(wat))
    sign_skill(skill, load_signing_key(state.workdir / "keys" / "demo-signer.key"))
    return skill


def counter_skill(state: DemoState, root: Path) -> Path:
    """The counter skill, signed with the demo key (trusted by the demo's trust store)."""
    return wat_skill(state, root, "counter", COUNTER_WAT, ("execute", "trap"))


def constant_output_wat(output: bytes) -> str:
    """A module whose ``execute`` answers ``output`` verbatim, whatever its input."""
    escaped = "".join(f"\\{b:02x}" for b in output)
    packed = (1024 << 32) | len(output)
    return f"""
(module
  (memory (export "memory") {1 + (1024 + len(output)) // 65536 + 1})
  (global $heap (mut i32) (i32.const {2048 + len(output)}))
  (data (i32.const 1024) "{escaped}")
{ALLOC_WAT}  (func (export "execute") (param i32 i32) (result i64) (i64.const {packed})))
"""


def nested_output(depth: int) -> bytes:
    """``{"a":{"a":...1...}}`` nested ``depth`` objects deep."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def signed_copy(state: DemoState, source: Path, root: Path) -> Path:
    """A copy of the skill in ``source`` under ``root``, signed with the demo key."""
    import shutil

    from vak.identity.keys import load_signing_key
    from vak.identity.signing import sign_skill

    dest = root / source.name
    shutil.copytree(source, dest, dirs_exist_ok=True)
    sign_skill(dest, load_signing_key(state.workdir / "keys" / "demo-signer.key"))
    return dest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mcp_http_server(config: Path) -> Iterator[str]:
    """``vak mcp serve --http`` on ``config`` in a subprocess; yields its ``/mcp`` URL."""
    import socket
    import subprocess
    import sys
    import time

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vak.cli.main", "mcp", "serve", "--config", str(config),
         "--http", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
