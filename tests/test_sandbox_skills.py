"""Property tests of the example skills through the engine (the C SDK's JSON code)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sandbox_helpers import HOST_NAMES, load_skill, no_host, small_settings

from vak.sandbox.engine import Engine

PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    with Engine(small_settings(tmp_path_factory.mktemp("skills")), HOST_NAMES) as eng:
        yield eng


def _calc(engine: Engine, skills: Path, op: str, a: object, b: object) -> dict:
    digest, limits = load_skill(engine, skills / "calculator")
    out = engine.call(digest, "execute", orjson.dumps({"operation": op, "a": a, "b": b}),
                      limits, no_host)
    return orjson.loads(out.output)


INTS = st.integers(min_value=-(10**9), max_value=10**9)


@PROPS
@given(op=st.sampled_from(["add", "subtract", "multiply"]), a=INTS, b=INTS)
def test_calculator_integers_exact(engine: Engine, built_skills: Path, op: str, a: int,
                                   b: int) -> None:
    expected = {"add": a + b, "subtract": a - b, "multiply": a * b}[op]
    got = _calc(engine, built_skills, op, a, b)
    if abs(expected) < 2**53:
        assert got == {"result": expected}
    else:  # beyond 2^53 the SDK prints 15 significant digits
        assert got["result"] == pytest.approx(expected, rel=1e-14)


DECIMALS = st.decimals(min_value=-10**6, max_value=10**6, places=3, allow_nan=False,
                       allow_infinity=False).map(float)


@PROPS
@given(op=st.sampled_from(["add", "subtract", "multiply", "divide"]), a=DECIMALS, b=DECIMALS)
def test_calculator_decimals_close(engine: Engine, built_skills: Path, op: str, a: float,
                                   b: float) -> None:
    got = _calc(engine, built_skills, op, a, b)
    if op == "divide" and b == 0:
        assert got == {"error": "division by zero"}
        return
    expected = {"add": a + b, "subtract": a - b, "multiply": a * b,
                "divide": a / b if b else 0.0}[op]
    assert got["result"] == pytest.approx(expected, rel=1e-9, abs=1e-9)


WORDS = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Po")) |
                st.sampled_from(["é", "日", '"', "\\"]), min_size=1, max_size=8)
SEPS = st.sampled_from([" ", "  ", "\n", "\t", " \n "])


@PROPS
@given(parts=st.lists(st.tuples(WORDS, SEPS), max_size=30))
def test_wordstats_matches_python(engine: Engine, built_skills: Path,
                                  parts: list[tuple[str, str]]) -> None:
    text = "".join(w + s for w, s in parts)
    digest, limits = load_skill(engine, built_skills / "wordstats")
    out = orjson.loads(engine.call(digest, "execute", orjson.dumps({"text": text}), limits,
                                   no_host).output)
    words = text.split()
    assert out["words"] == len(words)
    assert out["characters"] == len(text)
    assert out["lines"] == (text.count("\n") + 1 if text else 0)
    longest = max(words, key=lambda w: len(orjson.dumps(w)) - 2) if words else ""
    assert out["longest_word"] == longest


# skills/ (hostile test skills) and vak/examples (the packaged examples it links to)
_REPO = Path(__file__).resolve().parent.parent
MANIFESTS = sorted([*(_REPO / "skills").rglob("skill.yaml"),
                    *(_REPO / "vak" / "examples").glob("*/skill.yaml")])
REFUSED_AT_COMPILE = {"notoffered", "wasi", "noalloc"}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_manifest_templates_are_valid_and_match_modules(
        engine: Engine, built_skills: Path, manifest: Path) -> None:
    from vak.errors import ABIError
    from vak.identity.manifest import load_yaml_mapping, parse_manifest

    parsed = parse_manifest(load_yaml_mapping(manifest.read_text(), str(manifest)), str(manifest))
    assert parsed.signature is None and parsed.module.sha256 is None  # unsigned templates
    if parsed.name in REFUSED_AT_COMPILE:
        with pytest.raises(ABIError):
            load_skill(engine, manifest.parent)
        return
    if parsed.module.kind == "component":
        # compiled and called once per session by the component tests (seconds each)
        from vak.sandbox.kinds import binary_kind

        module = manifest.parent / parsed.module.path
        if module.is_file() or parsed.name != "jsfetch":  # jsfetch needs node to build
            assert binary_kind(module.read_bytes()) == "component"
        return
    digest, _ = load_skill(engine, manifest.parent)
    compiled = engine.compiled(digest)
    declared = {e.name for e in parsed.exports}
    if parsed.name == "noexport":
        assert not declared & set(compiled.exports)
    else:
        assert all(compiled.exports.get(name) for name in declared), declared
