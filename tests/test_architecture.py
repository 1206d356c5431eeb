"""The architecture of docs/ARCHITECTURE.md, enforced by parsing every module's imports.

The rules (RULES contract 2 and docs/ARCHITECTURE.md "Imports that are forbidden"):

* the sandbox never imports the policy, audit or host rooms, nor the facade;
* the host never imports the facade; the policy never imports the host;
* audit never imports the sandbox, policy, host or the facade;
* the audit verifier, with everything it imports inside ``vak``, reaches only
  the audit format part, the identity key files, ``vak.canonical`` and
  ``vak.errors`` (no wasmtime, cedarpy or jsonschema);
* inside ``vak/`` nothing imports from the ``vak`` package itself (``from vak
  import X`` loads the facade): import from the defining module;
* a ``_``-private module is imported only from inside the package that holds it.

Imports are read from the source (``ast``), including those inside functions and
under ``TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import vak

ROOT = Path(vak.__file__).resolve().parent
FACADE = ("vak.kernel", "vak.config")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (not loaded at run time)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(n.lineno for n in ast.walk(inner) if hasattr(n, "lineno"))
    return lines


@cache
def imports_of(name: str, runtime: bool = False) -> frozenset[str]:
    """Every module ``name`` imports; ``from a import b`` is ``a.b`` when that is a module.

    With ``runtime``, imports under ``TYPE_CHECKING`` are left out (they are still
    dependencies for the room rules, but never loaded).
    """
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree) if runtime else set()
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules() else base)
    return frozenset(found)


def _loaded_with(name: str) -> set[str]:
    """The modules Python runs to import ``name``: its parent packages, then itself."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(2, len(parts) + 1)}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _room(prefix: str) -> Iterator[str]:
    return (m for m in modules() if _within(m, prefix))


FORBIDDEN: list[tuple[str, tuple[str, ...]]] = [
    ("vak.sandbox", ("vak.policy", "vak.audit", "vak.host", *FACADE)),
    ("vak.host", FACADE),
    ("vak.policy", ("vak.host", *FACADE)),
    ("vak.audit", ("vak.sandbox", "vak.policy", "vak.host", *FACADE)),
    ("vak.identity", ("vak.sandbox", "vak.policy", "vak.host", *FACADE)),
]


@pytest.mark.parametrize(("room", "banned"), FORBIDDEN, ids=[r for r, _ in FORBIDDEN])
def test_room_never_imports(room: str, banned: tuple[str, ...]) -> None:
    bad = sorted(
        f"{mod} imports {imp}"
        for mod in _room(room) for imp in imports_of(mod)
        if any(_within(imp, b) for b in banned)
    )
    assert not bad, "\n".join(bad)


#: the composition root, the CLI, what renders the config for it (``vak init``) and
#: ``vak serve``, which starts kernels from a config as the CLI does;
#: ``vak/__init__`` names ``KernelConfig`` lazily
CONFIG_READERS = ("vak.kernel", "vak.cli", "vak._configdoc", "vak.serve")


def test_only_the_composition_root_and_cli_import_kernel_config() -> None:
    bad = sorted(
        m for m in modules()
        if "vak.config" in imports_of(m) and m != "vak"
        and not any(_within(m, ok) for ok in CONFIG_READERS)
    )
    assert not bad, f"{bad} import vak.config: take the room's settings object instead"


def test_nothing_in_vak_imports_the_package_itself() -> None:
    """``from vak import X`` inside vak/ would load the facade (and is a cycle waiting)."""
    bad = sorted(m for m in modules() if m != "vak" and "vak" in imports_of(m))
    assert not bad, bad


def test_private_modules_stay_in_their_package() -> None:
    bad = []
    for mod in modules():
        for imp in imports_of(mod):
            parts = imp.split(".")
            private = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
            if not _within(imp, "vak") or private is None:
                continue
            owner = ".".join(parts[:private])  # the package holding the private module
            if not _within(mod, owner):
                bad.append(f"{mod} imports {imp} (private to {owner})")
    assert not bad, "\n".join(sorted(bad))


#: the audit format part (entry, checkpoint note, Merkle, canonical JSON), the
#: verifier's own readers of it, and the one key-file story it reads keys with
VERIFIER_ALLOWED_PREFIXES = (
    "vak.audit.verify", "vak.audit.entry", "vak.audit.checkpoint", "vak.audit.merkle",
    "vak.audit.format", "vak.audit.scan", "vak.audit.state", "vak.audit.entrysig",
    "vak.audit.receipt", "vak.audit.keys", "vak.canonical", "vak.errors", "vak.identity",
    # signed approval statements and their checks are part of the verifiable format
    "vak.audit.approval", "vak.audit.approvalcheck",
    # the one escaping rule for untrusted text (key comments quoted in a message):
    # standard library only, imports nothing (test_the_escaper_depends_on_nothing)
    "vak.text",
)
VERIFIER_THIRD_PARTY_BANNED = ("wasmtime", "cedarpy", "jsonschema")


def test_verifier_reaches_only_the_format_part() -> None:
    seen: set[str] = set()
    todo = sorted(_loaded_with("vak.audit.verify"))
    third_party: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        for imp in imports_of(mod, runtime=True):
            if imp in modules() and imp != "vak":  # vak/__init__ is lazy (test_exports)
                todo.extend(_loaded_with(imp))
            elif any(_within(imp, b) for b in VERIFIER_THIRD_PARTY_BANNED):
                third_party.add(f"{mod} imports {imp}")
    outside = sorted(m for m in seen if m not in ("vak", "vak.audit")
                     and not any(_within(m, ok) for ok in VERIFIER_ALLOWED_PREFIXES))
    assert "vak.identity.manifest" not in seen  # keys only: no manifest schema, no jsonschema
    assert not outside, f"the verifier reaches {outside}"
    assert not third_party, sorted(third_party)


def test_the_escaper_depends_on_nothing() -> None:
    """vak.text is allowed to every room, the verifier included, because it imports
    nothing but the standard library."""
    import sys

    imports = imports_of("vak.text")
    assert not [m for m in imports if _within(m, "vak")]
    assert all(m.split(".")[0] in sys.stdlib_module_names or m == "__future__"
               for m in imports), imports


def test_the_parser_sees_lazy_and_relative_imports() -> None:
    """The checks above are only as good as this reader: prove it on known modules."""
    assert "vak.sandbox.engine" in imports_of("vak.kernel")  # inside a function
    assert "vak.errors" in imports_of("vak.config")
    assert "vak.formats" in imports_of("vak.kernel") and "vak" not in imports_of("vak.kernel")
    # under TYPE_CHECKING: a dependency for the room rules, not loaded at run time
    assert "vak.identity.manifest" in imports_of("vak.invocation")
    assert "vak.identity.manifest" not in imports_of("vak.invocation", runtime=True)


def _types_in(hint: object) -> Iterator[type]:
    import typing

    if isinstance(hint, type):
        yield hint
    for arg in typing.get_args(hint):
        yield from _types_in(arg)


def _public_callables() -> Iterator[tuple[str, object]]:
    import inspect

    for name in vak.__all__:
        obj = getattr(vak, name)
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_") and attr != "__init__":
                continue
            target = member.fget if isinstance(member, property) else member
            target = getattr(target, "__func__", target)
            if callable(target):
                yield f"{name}.{attr}", target


def test_no_private_type_in_a_public_signature() -> None:
    import typing

    from vak.host.settings import HostSettings
    from vak.policy.settings import PolicySettings
    from vak.sandbox.settings import EngineSettings, WorkerSettings

    # names vak.config imports only for type checking (its rooms load on first use)
    lazy = {"EngineSettings": EngineSettings, "WorkerSettings": WorkerSettings,
            "HostSettings": HostSettings, "PolicySettings": PolicySettings}
    bad = []
    for where, func in _public_callables():
        namespace = {**getattr(func, "__globals__", {}), **lazy}
        for hint in typing.get_type_hints(func, globalns=namespace).values():
            for t in _types_in(hint):
                if any(part.startswith("_") for part in t.__module__.split(".")):
                    bad.append(f"{where} names {t.__module__}.{t.__qualname__}")
    assert not bad, "\n".join(bad)
    assert any(w == "Kernel.skills" for w, _ in _public_callables())
