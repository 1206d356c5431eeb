"""Every example a ``--help`` prints runs as printed against a demo work directory.

Each help page (``vak``, ``vak run``, ``vak-skill-sign verify``, ``vak-audit`` ...)
gets a fresh copy of one demo work directory, with ``demo`` linking to itself
so that ``--config demo/vak.toml`` resolves, plus the few files a page's
examples name (``keys/author.key``, ``request.json``, ``~/.ssh/id_ed25519``).
Its examples then run in the order printed, through ``bash`` as a user would
paste them, and each must exit 0 without a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import parser_pages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vak.cli import audit, main, skill_sign
from vak.demo import run_demo

PREFIXES = ("vak ", "vak-skill-sign ", "vak-audit ")
BIN = str(Path(sys.executable).parent)


def examples(help_text: str) -> list[str]:
    """Command lines in a help text, with ``\\`` continuations joined."""
    out: list[str] = []
    lines = iter(help_text.splitlines())
    for line in lines:
        text = line.strip()
        if not text.startswith(PREFIXES):
            continue
        while text.endswith("\\"):
            text = text[:-1] + " " + next(lines).strip()
        out.append(text)
    return out


PAGES = {p.prog: examples(p.format_help())
         for build in (main.build_parser, skill_sign.build_parser, audit._parser)
         for p in parser_pages(build())}
PAGES = {prog: cmds for prog, cmds in PAGES.items() if cmds}

TRUST_KEYS = ["vak-skill-sign keygen --out ci.key | sed -n 's/^key id: //p' > ci.key.id",
              "vak-skill-sign keygen --out alice"]
#: what a page's examples assume exists beyond the demo state (made before they run)
SETUP = {
    "vak-skill-sign sign": ["vak-skill-sign keygen --out signer.key"],
    "vak-skill-sign verify": ["vak-skill-sign keygen --out signer.key",
                              "vak-skill-sign sign skills/calculator --key signer.key",
                              "printf '  - key: \"%s\"\\n    tier: trusted\\n' "
                              "\"$(cat signer.key.pub)\" >> trust.yaml"],
    "vak-audit": ["vak run calculator__execute --input '{\"operation\":\"add\",\"a\":1,\"b\":2}'"]
    * 3,
    **{page: TRUST_KEYS for page in ("vak trust", "vak trust add", "vak trust revoke")},
}
#: a key id is different in every installation: the example's stands for the one just made
KEY_IDS = {"ed25519:5bf5603f": "$(cat ci.key.id)"}


def test_every_command_prints_examples() -> None:
    for prog in ("vak", "vak run", "vak skill", "vak init", "vak status", "vak-skill-sign",
                 "vak-audit"):
        assert PAGES.get(prog), prog


@pytest.fixture(scope="module")
def demo_dir(built_skills: Path, component_cache: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("examples") / "demo"
    report = run_demo(workdir, cache_dir=component_cache.parent)
    assert report.ok, report.render()
    return workdir


def _prepare(demo: Path, dest: Path, cache: Path) -> dict[str, str]:
    shutil.copytree(demo, dest, symlinks=True)
    (dest / "demo").symlink_to(".")
    shutil.copy(dest / "keys" / "demo-signer.key", dest / "keys" / "author.key")
    (dest / "request.json").write_text(json.dumps({"path": "/workspace/hello.txt"}))
    (dest / "input.json").write_text(json.dumps({"operation": "add", "a": 1, "b": 2}))
    home = dest.parent / "home"
    (home / ".ssh").mkdir(parents=True)
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption())
    (home / ".ssh" / "id_ed25519").write_bytes(key)
    (dest.parent / "tmp").mkdir()  # `vak demo` without --workdir makes its temp dir here
    return {**os.environ, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "VAK_KEY_PASS": "example passphrase", "TMPDIR": str(dest.parent / "tmp"),
            # `vak demo` keeps its compiled Python skill there: one compile per session
            "VAK_CACHE_DIR": str(cache)}


@pytest.mark.parametrize("prog", sorted(PAGES))
def test_help_examples_run_as_printed(prog: str, demo_dir: Path, component_cache: Path,
                                     tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    env = _prepare(demo_dir, cwd, component_cache.parent)
    for command in [*SETUP.get(prog, []), *PAGES[prog]]:
        for example, real in KEY_IDS.items():
            command = command.replace(example, real)
        proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"{prog}: {command}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr, command
