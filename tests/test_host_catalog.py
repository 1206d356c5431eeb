"""The catalog is the one description of each host function; docs and code agree with it."""

from __future__ import annotations

import builtins
import os
import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from vak.errors import ABIError
from vak.host.catalog import HOST_FUNCTIONS, markdown
from vak.host.ceiling import CAPABILITY_KEYS, ceiling_violation
from vak.host.normalize import NormalizeError
from vak.host.settings import HostSettings
from vak.identity.manifest import Capabilities

DOC = Path(__file__).resolve().parent.parent / "docs" / "HOST-FUNCTIONS.md"
ROWS = {f.name: f for f in HOST_FUNCTIONS}


def test_host_functions_doc_is_generated_from_the_catalog() -> None:
    assert DOC.read_text(encoding="utf-8") == markdown(), (
        "docs/HOST-FUNCTIONS.md is stale: run "
        "`python -m vak.host.catalog --markdown > docs/HOST-FUNCTIONS.md`"
    )


@pytest.mark.parametrize("name", ROWS)
def test_example_agrees_with_schemas_and_normaliser(name: str) -> None:
    fn = ROWS[name]
    args, reply = fn.example
    jsonschema.Draft202012Validator.check_schema(fn.args_schema)
    jsonschema.validate(args, fn.args_schema)
    jsonschema.validate(reply, fn.reply_schema)
    call = fn.normalise(args, "skill", HostSettings())
    assert fn.capability in CAPABILITY_KEYS
    ceiling_violation(fn.capability, call, Capabilities())  # a known key never raises
    assert fn.action == f'Vak::Action::"{name}"' and "host_failure" in fn.errors


def _wrong(prop: dict[str, Any]) -> Any:
    kind = prop.get("type")
    return {"string": 5, "integer": "5", "boolean": "yes", "object": [1]}.get(str(kind))


@pytest.mark.parametrize("name", ROWS)
def test_normaliser_refuses_what_the_schema_refuses(name: str) -> None:
    # each typed member of the args schema, given the wrong type, is refused
    fn = ROWS[name]
    args, _ = fn.example
    for member, prop in fn.args_schema.get("properties", {}).items():
        bad = _wrong(prop)
        if bad is None:
            continue
        with pytest.raises((ABIError, NormalizeError)):
            fn.normalise({**args, member: bad}, "skill", HostSettings())
    for member in fn.args_schema.get("required", []):
        with pytest.raises((ABIError, NormalizeError)):
            fn.normalise({k: v for k, v in args.items() if k != member}, "skill", HostSettings())


def test_normalisers_are_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_io(*a: object, **k: object) -> None:
        raise AssertionError("a normaliser performed I/O")

    for target, attr in ((socket, "getaddrinfo"), (socket, "create_connection"),
                         (builtins, "open"), (os, "open"), (os, "scandir")):
        monkeypatch.setattr(target, attr, no_io)
    for fn in HOST_FUNCTIONS:
        fn.normalise(fn.example[0], "skill", HostSettings())
    url = ROWS["http_request"].normalise({"url": "https://named.example/"}, "s", HostSettings())
    assert url.resource.attrs["ip_class"] == "unresolved" and url.unresolved
