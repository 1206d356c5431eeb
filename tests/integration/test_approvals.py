"""Human approval bound to the exact call, through the real kernel (issue 15, items 1-3).

A demo workdir gets an operator policy ``@approval("required")`` on the notes
skill's ``fs_write``, an approver key (``roles: [approver]``) and a plain key in
the trust store. Every test drives the real kernel (real wasmtime, real Cedar,
the real audit log) and the real ``vak approvals`` / ``vak-audit`` CLIs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from vak.approvals.answer import Answer, sign_answer
from vak.approvals.store import ApprovalRequest, ApprovalStore
from vak.cli.main import main as vak_main
from vak.demo import prepare_workdir
from vak.errors import ApprovalDeniedError, ApprovalPendingError
from vak.identity.keys import SigningKey, generate_key_file, load_public_key, load_signing_key
from vak.identity.trust import Tier
from vak.identity.trustfile import TrustFile
from vak.kernel import Kernel

POLICY = """\
// writes by the notes skill need a person's signed approval
@id("ops.notes-writes-need-approval")
@approval("required")
permit (principal == Vak::Skill::"notes", action == Vak::Action::"fs_write", resource)
when { resource in principal.fs_write };
"""


@dataclass(frozen=True)
class Env:
    workdir: Path
    config: Path
    approver_key: Path
    plain_key: Path

    @property
    def store(self) -> ApprovalStore:
        return ApprovalStore(self.workdir / ".vak" / "approvals")

    @property
    def log(self) -> Path:
        return self.workdir / "audit" / "vak.log"


@pytest.fixture
def env(built_skills: Path, tmp_path: Path) -> Iterator[Env]:
    workdir = tmp_path / "w"
    config = prepare_workdir(workdir, 1)
    (workdir / "policies" / "approvals.cedar").write_text(POLICY)
    keys = workdir / "keys"
    approver, plain = keys / "approver.key", keys / "plain.key"
    generate_key_file(approver, comment="operator")
    generate_key_file(plain, comment="not an approver")
    with TrustFile.edit(workdir / "trust.yaml") as trust:
        trust.add(load_public_key(f"{approver}.pub"), Tier.TRUSTED, roles=["approver"])
        trust.add(load_public_key(f"{plain}.pub"), Tier.TRUSTED)
    yield Env(workdir, config, approver, plain)


def write(kernel: Kernel, text: str = "hello", session: str = "s1") -> object:
    return kernel.invoke("notes__write", {"path": "/workspace/out.txt", "content": text},
                         session=session)


def pending_id(kernel: Kernel, text: str = "hello", session: str = "s1") -> str:
    with pytest.raises(ApprovalPendingError) as info:
        write(kernel, text, session)
    assert "awaits a person's approval" in info.value.message
    assert info.value.approval_id in info.value.message
    return info.value.approval_id


def cli(env: Env, *argv: str) -> int:
    return vak_main(["approvals", *argv, "--config", str(env.config)])


def audit_verify(env: Env, *extra: str) -> int:
    from vak.cli.audit import main as audit_main

    return audit_main(["verify", str(env.log), "--key",
                       str(env.workdir / "audit" / "log.key.pub"), *extra])


def entries(env: Env) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in env.log.read_bytes().splitlines()]


def test_pending_then_cli_approve_proceeds_once_and_verifies(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    with Kernel.from_config(env.config) as kernel:
        aid = pending_id(kernel)
        out = env.workdir / "workspace" / "out.txt"
        assert not out.exists()  # the call was not made
        assert cli(env, "list") == 0
        assert aid in capsys.readouterr().out
        assert cli(env, "show", aid) == 0
        assert "/workspace/out.txt" in capsys.readouterr().out
        assert cli(env, "approve", aid, "--key", str(env.approver_key), "--ttl", "5m") == 0
        write(kernel)  # the same call, retried: proceeds
        assert out.read_text() == "hello"
        assert env.store.get(aid).state == "used"
        # once: the next identical call needs a new approval
        assert pending_id(kernel) != aid
    log = entries(env)
    decision = next(e for e in log if e["kind"] == "host_decision"
                    and e["decision"]["effect"] == "approval_required"  # type: ignore[index]
                    and e["approval"]["id"] == aid)  # type: ignore[index]
    approval = next(e for e in log if e["kind"] == "approval")
    result = next(e for e in log if e["kind"] == "host_result"
                  and e.get("approval_seq") == approval["seq"])
    assert approval["approval"] == aid and approval["verdict"] == "approve"
    assert approval["seq"] < result["seq"]  # recorded before the effect
    assert result["decision_seq"] == approval["decision_seq"] != decision["seq"]
    capsys.readouterr()
    assert audit_verify(env, "--approvers", str(env.workdir / "trust.yaml")) == 0
    report = capsys.readouterr().out
    assert "1 approved effect(s) proven" in report and "RESULT: OK" in report
    # without the approvers' trust store the proof is incomplete, and says so
    assert audit_verify(env) == 1
    assert "approval-unchecked" in capsys.readouterr().out


def test_deny_refuses_the_retry(env: Env) -> None:
    with Kernel.from_config(env.config) as kernel:
        aid = pending_id(kernel)
        assert cli(env, "deny", aid, "--key", str(env.approver_key)) == 0
        with pytest.raises(ApprovalDeniedError) as info:
            write(kernel)
        assert "refused by approver" in info.value.message
        assert not (env.workdir / "workspace" / "out.txt").exists()
    kinds = [(e["kind"], e.get("verdict")) for e in entries(env)]
    assert ("approval", "deny") in kinds


def test_expired_approval_does_not_proceed(env: Env) -> None:
    with Kernel.from_config(env.config) as kernel:
        aid = pending_id(kernel)
        assert cli(env, "approve", aid, "--key", str(env.approver_key), "--ttl", "1s") == 0
        time.sleep(2.1)
        assert pending_id(kernel) != aid  # the expired answer is not used
        assert not (env.workdir / "workspace" / "out.txt").exists()


def test_wrong_key_and_key_without_role_are_refused(env: Env) -> None:
    with Kernel.from_config(env.config) as kernel:
        aid = pending_id(kernel)
        stranger = env.workdir / "keys" / "stranger.key"
        generate_key_file(stranger)
        assert cli(env, "approve", aid, "--key", str(stranger)) != 0  # not in the trust store
        assert cli(env, "approve", aid, "--key", str(env.plain_key)) != 0  # no approver role
        assert env.store.get(aid).state == "pending"
        # forged straight into the store (bypassing the CLI): the kernel ignores it
        rec = env.store.get(aid)
        forged = sign_answer(aid, rec.request.binding, True, load_signing_key(env.plain_key),
                             timedelta(minutes=5))
        env.store.answer(aid, forged)
        assert pending_id(kernel) != aid
        assert not (env.workdir / "workspace" / "out.txt").exists()


def test_approval_is_not_replayed_for_other_arguments_or_sessions(env: Env) -> None:
    with Kernel.from_config(env.config) as kernel:
        aid = pending_id(kernel, "hello")
        assert cli(env, "approve", aid, "--key", str(env.approver_key)) == 0
        assert pending_id(kernel, "rm -rf /") != aid
        assert pending_id(kernel, "hello", session="other") != aid
        assert env.store.get(aid).state == "approved"  # still unused
        write(kernel, "hello")
        assert env.store.get(aid).state == "used"


def test_concurrent_retries_only_one_proceeds(env: Env) -> None:
    with Kernel.from_config(env.config) as kernel:
        aid = pending_id(kernel)
        assert cli(env, "approve", aid, "--key", str(env.approver_key)) == 0
        results: list[str] = []
        barrier = threading.Barrier(4)

        def retry() -> None:
            barrier.wait()
            try:
                write(kernel)
                results.append("ok")
            except ApprovalPendingError:
                results.append("pending")

        threads = [threading.Thread(target=retry) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["ok", "pending", "pending", "pending"]


def _approve_with(key: SigningKey, approve: bool = True):  # type: ignore[no-untyped-def]
    def approver(request: ApprovalRequest) -> Answer:
        return sign_answer(request.id, request.binding, approve, key, timedelta(minutes=1))
    return approver


def test_approver_callable_sync_and_async(env: Env) -> None:
    key = load_signing_key(env.approver_key)
    seen: list[ApprovalRequest] = []

    def approver(request: ApprovalRequest) -> Answer:
        seen.append(request)
        return _approve_with(key)(request)  # type: ignore[no-any-return]

    with Kernel.from_config(env.config, approver=approver) as kernel:
        write(kernel, "sync")
        assert (env.workdir / "workspace" / "out.txt").read_text() == "sync"
        assert seen[0].function == "fs_write" and seen[0].resource == "/workspace/out.txt"

    async def async_approver(request: ApprovalRequest) -> Answer:
        await asyncio.sleep(0.01)
        return _approve_with(key)(request)  # type: ignore[no-any-return]

    async def run(kernel: Kernel) -> None:
        await kernel.ainvoke("notes__write", {"path": "/workspace/out.txt",
                                              "content": "async"}, session="s1")

    with Kernel.from_config(env.config, approver=async_approver) as kernel:
        asyncio.run(run(kernel))
        assert (env.workdir / "workspace" / "out.txt").read_text() == "async"


def test_approver_callable_deadline_and_wrong_key_deny(env: Env) -> None:
    def slow(request: ApprovalRequest) -> None:
        time.sleep(5)

    with Kernel.from_config(env.config, approver=slow) as kernel:
        kernel._mediator.approvals.timeout = 0.2
        t0 = time.monotonic()
        with pytest.raises(ApprovalDeniedError) as info:
            write(kernel)
        assert time.monotonic() - t0 < 3
        assert "no answer within" in info.value.message
    plain = _approve_with(load_signing_key(env.plain_key))
    with Kernel.from_config(env.config, approver=plain) as kernel:
        with pytest.raises(ApprovalDeniedError) as info:
            write(kernel)
        assert "approver role" in info.value.message
    assert not (env.workdir / "workspace" / "out.txt").exists()


def test_hostile_store_file_is_a_typed_refusal(env: Env) -> None:
    from vak.errors import PolicyDeniedError

    with Kernel.from_config(env.config) as kernel:
        aid = pending_id(kernel)
        env.store.path(aid).write_bytes(b'{"v": 1, "request": [], "answer": 7}')
        with pytest.raises(PolicyDeniedError) as info:
            write(kernel)
        assert "vak.approval-unavailable" in info.value.policy_ids
        assert not (env.workdir / "workspace" / "out.txt").exists()


def test_vak_trust_add_role(env: Env, tmp_path: Path) -> None:
    key = tmp_path / "op.key"
    generate_key_file(key)
    trust = tmp_path / "t.yaml"
    from vak.cli.trust import main as trust_main

    assert trust_main(["trust", "add", f"{key}.pub", "--tier", "trusted", "--role", "approver",
                       "--trust", str(trust)]) == 0
    assert "roles: [approver]" in trust.read_text()
    from vak.identity.trust import TrustStore

    (entry,) = TrustStore.load(trust).keys
    assert entry.roles == {"approver"}


async def _mcp_write(env: Env, answer: bool | None) -> tuple[object, list[str]]:
    import sys

    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    asked: list[str] = []

    async def elicit(context: object, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        if answer is None:
            return types.ElicitResult(action="cancel")
        return types.ElicitResult(action="accept", content={"approve": answer})

    server = StdioServerParameters(command=sys.executable, args=[
        "-m", "vak.cli.main", "mcp", "serve", "--config", str(env.config),
        "--approver-key", str(env.approver_key)])
    async with stdio_client(server) as (read, write), \
            ClientSession(read, write, elicitation_callback=elicit) as session:
        await session.initialize()
        result = await session.call_tool("notes__write", {"path": "/workspace/out.txt",
                                                          "content": "via mcp"})
    return result, asked


@pytest.mark.parametrize("answer", [True, False, None])
def test_mcp_elicitation_asks_the_person_and_records_the_answer(
        env: Env, answer: bool | None) -> None:
    import anyio

    pytest.importorskip("mcp")
    result, asked = anyio.run(_mcp_write, env, answer)
    assert len(asked) == 1 and "/workspace/out.txt" in asked[0]
    out = env.workdir / "workspace" / "out.txt"
    verdicts = [e.get("verdict") for e in entries(env) if e["kind"] == "approval"]
    if answer:
        assert not result.is_error and out.read_text() == "via mcp"  # type: ignore[attr-defined]
        assert verdicts == ["approve"]
        assert audit_verify(env, "--approvers", str(env.workdir / "trust.yaml")) == 0
    else:
        assert result.is_error and not out.exists()  # type: ignore[attr-defined]
        code = orjson.loads(result.content[0].text)["error"]  # type: ignore[attr-defined]
        assert (code, verdicts) == (("approval_denied", ["deny"]) if answer is False
                                    else ("approval_pending", []))


def test_worker_route_waits_for_approval_too(env: Env) -> None:
    from vak.config import KernelConfig

    cfg = KernelConfig.from_toml(env.config).with_(force_worker=True)
    with Kernel(cfg) as kernel:
        aid = pending_id(kernel)
        assert cli(env, "approve", aid, "--key", str(env.approver_key)) == 0
        inv = write(kernel)
        assert inv.worker  # type: ignore[attr-defined]
        assert (env.workdir / "workspace" / "out.txt").read_text() == "hello"
        assert env.store.get(aid).state == "used"


def test_async_approver_under_sync_invoke_and_cli_json(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    key = load_signing_key(env.approver_key)

    async def deny(request: ApprovalRequest) -> Answer:
        return _approve_with(key, approve=False)(request)  # type: ignore[no-any-return]

    with Kernel.from_config(env.config, approver=deny) as kernel, \
            pytest.raises(ApprovalDeniedError):
        write(kernel)
    assert cli(env, "list", "--all", "--json") == 0
    (row,) = orjson.loads(capsys.readouterr().out)["approvals"]
    assert row["state"] == "used" and row["answer"]["statement"]["verdict"] == "deny"
    assert cli(env, "show", "../../etc/passwd") != 0  # never a path outside the store
    assert cli(env, "approve", row["id"], "--key", str(env.approver_key)) != 0  # answered
    assert cli(env, "approve", row["id"], "--key", str(env.approver_key), "--ttl", "9y") != 0
