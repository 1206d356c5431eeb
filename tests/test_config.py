"""KernelConfig: TOML loading, relative paths, unknown keys refused with the key named."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vak.config import SHIPPED_POLICY_DIR, KernelConfig
from vak.errors import ConfigError


def test_defaults_resolve_under_state_dir(tmp_path: Path) -> None:
    cfg = KernelConfig(state_dir=tmp_path)
    assert cfg.resolved("audit_log") == tmp_path / "audit" / "vak.log"
    assert cfg.resolved("kv_path") == tmp_path / "kv.sqlite3"
    assert cfg.all_policy_dirs[0] == SHIPPED_POLICY_DIR


def test_toml_paths_resolve_against_file(tmp_path: Path) -> None:
    (tmp_path / "vak.toml").write_text(
        'state_dir = "state"\ntrust_store = "trust.yaml"\npolicy_dirs = ["pol"]\n'
        '[audit]\nlog = "a/log.jsonl"\nfsync = "batched:5"\n'
        '[host.fs_mounts]\n"/workspace" = "ws"\n'
        "[worker]\nforce = true\n"
    )
    cfg = KernelConfig.from_toml(tmp_path / "vak.toml")
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.trust_store == tmp_path / "trust.yaml"
    assert cfg.policy_dirs == (tmp_path / "pol",)
    assert cfg.resolved("audit_log") == tmp_path / "a" / "log.jsonl"
    assert cfg.audit_fsync == "batched:5"
    assert cfg.fs_mounts == {"/workspace": tmp_path / "ws"}
    assert cfg.force_worker is True


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("bogus = 1\n", "bogus"),
        ("[audit]\nlogg = 'x'\n", "audit.logg"),
        ("trust_store = 3\n", "trust_store"),
        ("policy_dirs = 'x'\n", "policy_dirs"),
        ("not toml [", "cannot read"),
    ],
    ids=["unknown-top", "unknown-section-key", "path-type", "list-type", "syntax"],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "vak.toml").write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        KernelConfig.from_toml(tmp_path / "vak.toml")


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        KernelConfig.from_toml(tmp_path / "nope.toml")
    assert "vak demo" in info.value.diagnostics()


# --- type checks derived from the field types ---------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "found"),
    [
        ('[engine]\nfuel = "false"\n', "engine.fuel", "str 'false'"),
        ('[engine]\npool_total_instances = "many"\n', "engine.pool_total_instances", "many"),
        ("[engine]\npool_total_instances = true\n", "engine.pool_total_instances", "bool"),
        ("[engine]\npool_max_memory_bytes = -1\n", "engine.pool_max_memory_bytes", "-1"),
        ("[worker]\npool_size = 1.5\n", "worker.pool_size", "float"),
        ("[worker]\nforce = 1\n", "worker.force", "int 1"),
        ("[audit]\norigin = 7\n", "audit.origin", "int 7"),
        ("[audit]\nlog = []\n", "audit.log", "list"),
        ("[host]\nfs_mounts = 3\n", "host.fs_mounts", "int 3"),
        ('[host.fs_mounts]\n"/workspace" = 3\n', "host.fs_mounts./workspace", "int 3"),
        ("[host]\nsecrets_env = ['A', 2]\n", "host.secrets_env[1]", "int 2"),
        ("[policy]\ndecision_cache_size = '9'\n", "policy.decision_cache_size", "str"),
        ("max_concurrency = 0\n", "max_concurrency", "0"),
        ("[kernel]\nsession_reuse = 'yes'\n", "session_reuse", "str 'yes'"),
        ("require_signature = 'false'\n", "require_signature", "str"),
        ("skill_dirs = ['a', 1]\n", "skill_dirs[1]", "int 1"),
        ("engine = 3\n", "engine", "int 3"),
        ("state_dir = ''\n", "state_dir", "str ''"),
    ],
    ids=lambda v: v if "\n" not in v else None,
)
def test_wrong_type_names_file_key_found_and_valid(
    tmp_path: Path, text: str, where: str, found: str
) -> None:
    path = tmp_path / "vak.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        KernelConfig.from_toml(path)
    err = info.value
    assert str(path) in err.message and where in err.message
    assert err.details["file"] == str(path) and err.details["field"] == where
    assert found in err.details["found"]
    assert err.details["valid"]  # says what would be accepted


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[engine]\npool_totl_instances = 3\n", "engine.pool_totl_instances"),
        ("[worker]\nforce_worker = true\n", "worker.force_worker"),
        ("[host.fs_mounts.deeper]\nx = 1\n", "host.fs_mounts.deeper"),
        ("[kernel]\nengine = 1\n", "kernel.engine"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[policy]\ndirs = []\n", "policy.dirs"),
    ],
    ids=["engine-key", "worker-key", "nested-table", "kernel-room", "table", "policy-key"],
)
def test_unknown_key_anywhere_is_refused(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "vak.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        KernelConfig.from_toml(tmp_path / "vak.toml")
    assert where in info.value.message
    assert info.value.details["valid"]


def test_every_room_field_is_a_toml_key(tmp_path: Path) -> None:
    """Keys come from the dataclass fields: a field a room adds parses without config.py."""
    import dataclasses

    cfg = KernelConfig()
    lines = []
    for room in ("engine", "worker", "host", "policy", "audit"):
        lines.append(f"[{room}]")
        for f in dataclasses.fields(getattr(cfg, room)):
            value = getattr(getattr(cfg, room), f.name)
            if isinstance(value, bool):
                lines.append(f"{f.name} = {str(value).lower()}")
            elif isinstance(value, int):
                lines.append(f"{f.name} = {value + 1}")
            elif isinstance(value, str | Path):
                lines.append(f'{f.name} = "{value}"')
    (tmp_path / "vak.toml").write_text("\n".join(lines) + "\n")
    loaded = KernelConfig.from_toml(tmp_path / "vak.toml")
    assert loaded.engine.pool_total_instances == cfg.engine.pool_total_instances + 1
    assert loaded.worker.pool_size == cfg.worker.pool_size + 1
    assert loaded.audit.log == tmp_path / "audit" / "vak.log"


def test_kernel_table_and_top_level_are_one_namespace(tmp_path: Path) -> None:
    (tmp_path / "vak.toml").write_text("[kernel]\nmax_concurrency = 3\nsession_reuse = true\n")
    cfg = KernelConfig.from_toml(tmp_path / "vak.toml")
    assert (cfg.max_concurrency, cfg.session_reuse) == (3, True)
    (tmp_path / "vak.toml").write_text("max_concurrency = 2\n[kernel]\nmax_concurrency = 3\n")
    with pytest.raises(ConfigError, match=r"kernel\.max_concurrency"):
        KernelConfig.from_toml(tmp_path / "vak.toml")


def test_room_defaults_survive_a_partial_table(tmp_path: Path) -> None:
    (tmp_path / "vak.toml").write_text('state_dir = "s"\n[audit]\nfsync = "batched:5"\n'
                                       "[engine]\nfuel = false\n")
    cfg = KernelConfig.from_toml(tmp_path / "vak.toml")
    assert cfg.audit_settings().log == tmp_path / "s" / "audit" / "vak.log"
    assert cfg.engine_settings().module_cache_dir == tmp_path / "s" / "cache"
    assert cfg.engine.fuel is False and cfg.fuel is False


def test_code_built_config_is_checked_too(tmp_path: Path) -> None:
    from vak.sandbox.settings import EngineSettings

    with pytest.raises(ConfigError, match=r"engine\.fuel"):
        KernelConfig(engine=EngineSettings(fuel="false"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"worker\.pool_size"):
        KernelConfig().with_(worker_pool_size="2")
    with pytest.raises(ConfigError, match="bogus"):
        KernelConfig().with_(bogus=1)


def test_with_accepts_flat_and_nested_names(tmp_path: Path) -> None:
    import dataclasses

    cfg = KernelConfig(state_dir=tmp_path).with_(force_worker=True, audit_origin="o/k",
                                                 module_cache=False)
    assert cfg.worker.force and cfg.force_worker
    assert cfg.audit.origin == "o/k"
    assert cfg.engine_settings().module_cache_dir is None and not cfg.module_cache
    nested = cfg.with_(worker=dataclasses.replace(cfg.worker, pool_size=5))
    assert nested.worker_pool_size == 5 and nested.force_worker


def test_room_settings_resolve_relative_paths_under_state_dir(tmp_path: Path) -> None:
    from vak.host.settings import HostSettings

    cfg = KernelConfig(state_dir=tmp_path, host=HostSettings(
        kv_path=Path("kv.db"), fs_mounts={"/w": Path("ws")}, secrets_file=Path("/abs/s.toml")))
    host = cfg.host_settings()
    assert host.kv_path == tmp_path / "kv.db"
    assert host.fs_mounts == {"/w": tmp_path / "ws"}
    assert host.secrets_file == Path("/abs/s.toml")
    assert cfg.policy_settings().policy_dirs == (SHIPPED_POLICY_DIR,)


def test_found_value_is_bounded_in_the_message(tmp_path: Path) -> None:
    (tmp_path / "vak.toml").write_text(f'[engine]\nfuel = "{"x" * 5000}"\n')
    with pytest.raises(ConfigError) as info:
        KernelConfig.from_toml(tmp_path / "vak.toml")
    assert len(info.value.message) < 400


@given(st.dictionaries(st.sampled_from(["engine", "worker", "host", "audit", "policy", "x"]),
                       st.dictionaries(st.text(max_size=8), st.one_of(
                           st.integers(), st.booleans(), st.text(max_size=5),
                           st.lists(st.integers(), max_size=2)), max_size=3), max_size=3))
def test_any_mapping_is_a_config_or_a_config_error(data: dict[str, dict[str, object]]) -> None:
    with contextlib.suppress(ConfigError):
        KernelConfig.from_mapping(data, base=Path("/b"))


def test_audit_settings_alone_match_the_full_config(tmp_path: Path) -> None:
    from vak.config import audit_settings_from_toml

    for text in ('state_dir = "s"\n[audit]\nlog = "a/x.log"\nfsync = "batched:5"\n',
                 '[kernel]\nstate_dir = "/abs/st"\n', "",
                 'state_dir = "s"\n[engine]\nfuel = false\n[audit]\norigin = "o.vak/k"\n'):
        (tmp_path / "vak.toml").write_text(text)
        full = KernelConfig.from_toml(tmp_path / "vak.toml").audit_settings()
        assert audit_settings_from_toml(tmp_path / "vak.toml") == full, text
    (tmp_path / "vak.toml").write_text("[audit]\nfsync = 5\n")
    with pytest.raises(ConfigError, match=r"audit\.fsync"):
        audit_settings_from_toml(tmp_path / "vak.toml")


def test_reading_the_audit_settings_loads_no_other_room(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "vak.toml").write_text('state_dir = "s"\n[audit]\norigin = "o.vak/k"\n')
    code = (
        "import sys\n"
        "from vak.config import audit_settings_from_toml\n"
        f"audit_settings_from_toml({str(tmp_path / 'vak.toml')!r})\n"
        "rooms = ('vak.sandbox', 'vak.host', 'vak.policy', 'vak.kernel', 'wasmtime')\n"
        "loaded = [m for m in sys.modules if m.startswith(rooms)]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
