"""``vak serve`` throughput: 2 kernel workers against 1, 16 concurrent MCP clients.

Both servers run the demo's signed skills from the same files (each its own
state dir and logs, ``fsync = "batched:5"`` as the demo writes it), with a
bearer token. The load is 16 MCP sessions over HTTP/1.1 keep-alive, each
calling ``calculator__execute`` in a loop: **raw JSON-RPC over asyncio
sockets** (initialize, notifications/initialized, then tools/call; responses
are the SDK's SSE bodies, parsed just enough to find the result), not the
``mcp`` client -- on 2 cores the load generator shares the CPU with the
server, and the SDK client costs about as much per call as the server does,
which would measure the client. Bursts alternate between the two servers.

Figures: calls/s of 2 workers vs 1 worker (target: at least 1.7x) with each
side's p50 and p99 call latency in ``extra``. Noisy on a shared machine.

Run alone with ``python -m benchmarks --only serve``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import Context, Figure, Sample, guarded, progress

CLIENTS = 16
TARGET = 1.7


def figures(ctx: Context) -> list[Figure]:
    return [guarded("serve 2 workers vs 1, 16 MCP clients", lambda: _throughput(ctx),
                    target=f">= {TARGET}x", baseline_name="vak serve --workers 1")]


# ---------------------------------------------------------------- state
def serve_workdirs(root: Path, names: tuple[str, ...]) -> list[Path]:
    """One demo workdir (built, signed, trusted) and a config per name on its files."""
    from vak.demo import prepare_workdir

    demo = root / "demo"
    prepare_workdir(demo, 9)
    skills = ", ".join(f'"{demo / "skills" / n}"' for n in ("calculator", "notes"))
    configs = []
    for name in names:
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "vak.toml").write_text(
            f'state_dir = "{d / ".vak"}"\ntrust_store = "{demo / "trust.yaml"}"\n'
            f'policy_dirs = ["{demo / "policies"}"]\nskill_dirs = [{skills}]\n'
            f'[audit]\nlog = "{d / "audit" / "vak.log"}"\nkey = "{d / "audit" / "log.key"}"\n'
            f'origin = "bench.vak/{name}"\nfsync = "batched:5"\n'
            f'[host.fs_mounts]\n"/workspace" = "{demo / "workspace"}"\n', encoding="utf-8")
        configs.append(d / "vak.toml")
    return configs


# ---------------------------------------------------------------- raw client
class _Closed(Exception):
    """The connection was closed before an answer."""


class RawSession:
    """One MCP session over one keep-alive HTTP/1.1 connection, raw JSON-RPC."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.session = ""
        self.ids = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        init = await self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                             "clientInfo": {"name": "bench", "version": "1"}})
        if "result" not in init:
            raise RuntimeError(f"initialize failed: {init}")
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        body = await self.post({"jsonrpc": "2.0", "id": self.ids, "method": method,
                                "params": params})
        for line in body.split(b"\n"):
            if line.startswith(b"data:"):
                out: dict[str, Any] = json.loads(line[5:])
                return out
        if body.startswith(b"{"):
            direct: dict[str, Any] = json.loads(body)
            return direct
        raise RuntimeError(f"no JSON-RPC answer in {body[:200]!r}")

    async def post(self, message: dict[str, Any]) -> bytes:
        try:
            return await self._post(message)
        except (ConnectionError, asyncio.IncompleteReadError, _Closed):
            # the server closed an idle keep-alive connection: reconnect (the front
            # routes the new connection by the session id) and send again
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            return await self._post(message)

    async def _post(self, message: dict[str, Any]) -> bytes:
        assert self.reader is not None and self.writer is not None
        data = json.dumps(message).encode()
        head = (f"POST /mcp HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
                "content-type: application/json\r\n"
                "accept: application/json, text/event-stream\r\n"
                f"authorization: Bearer {self.token}\r\n"
                "mcp-protocol-version: 2025-06-18\r\n"
                + (f"mcp-session-id: {self.session}\r\n" if self.session else "")
                + f"content-length: {len(data)}\r\n\r\n").encode()
        self.writer.write(head + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise _Closed
        headers: dict[bytes, bytes] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"mcp-session-id" in headers:
            self.session = headers[b"mcp-session-id"].decode()
        if headers.get(b"transfer-encoding") == b"chunked":
            chunks = []
            while True:
                size = int((await self.reader.readline()).strip() or b"0", 16)
                if size == 0:
                    await self.reader.readline()
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readline()
            body = b"".join(chunks)
        else:
            body = await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
        if not status_line.startswith(b"HTTP/1.1 2"):
            raise RuntimeError(f"{status_line!r} {body[:200]!r}")
        return body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _burst(sessions: list[RawSession], calls: int, latencies: list[float]) -> int:
    async def one(s: RawSession) -> int:
        done = 0
        for i in range(calls):
            t0 = time.perf_counter_ns()
            answer = await s.rpc("tools/call", {"name": "calculator__execute", "arguments": {
                "operation": "add", "a": i, "b": 1}})
            latencies.append(time.perf_counter_ns() - t0)
            if answer.get("result", {}).get("isError"):
                raise RuntimeError(f"tool call failed: {answer}")
            done += 1
        return done

    return sum(await asyncio.gather(*(one(s) for s in sessions)))


def _throughput(ctx: Context) -> Figure:
    from vak.serve.process import ServeProcess
    from vak.serve.tokens import TokenFile

    root = ctx.workdir / "serve"
    one, two = serve_workdirs(root, ("w1", "w2"))
    tokens = root / "tokens.json"
    token = TokenFile.load_or_empty(tokens).add("bench")
    rounds, calls = (4, 15) if ctx.quick else (10, 40)
    with ServeProcess.start(one, workers=1, token_file=tokens,
                            extra=("--log-level", "warning")) as s1, \
            ServeProcess.start(two, workers=2, token_file=tokens,
                               extra=("--log-level", "warning")) as s2:
        return asyncio.run(_measure(s1, s2, token, rounds, calls))


async def _measure(s1: Any, s2: Any, token: str, rounds: int, calls: int) -> Figure:
    def endpoint(srv: Any) -> tuple[str, int]:
        host, port = srv.state["listen"].rsplit(":", 1)
        return host, int(port)

    pools = []
    for srv in (s1, s2):
        host, port = endpoint(srv)
        sessions = [RawSession(host, port, token) for _ in range(CLIENTS)]
        await asyncio.gather(*(s.open() for s in sessions))
        pools.append(sessions)
    lat: tuple[list[float], list[float]] = ([], [])
    await _burst(pools[0], 5, [])  # warm-up, both sides
    await _burst(pools[1], 5, [])
    import psutil

    procs = [psutil.Process(pid) for pid in s2.pids]  # front, worker 0, worker 1
    single_procs = [psutil.Process(pid) for pid in s1.pids]  # front, worker 0
    me = psutil.Process()
    cpu0 = [sum(p.cpu_times()[:2]) for p in procs]
    single0 = [sum(p.cpu_times()[:2]) for p in single_procs]
    client_cpu = [0.0, 0.0]
    wall = [0.0, 0.0]
    rates: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for side in order:
            t0, c0 = time.perf_counter_ns(), sum(me.cpu_times()[:2])
            n = await _burst(pools[side], calls, lat[side])
            elapsed = time.perf_counter_ns() - t0
            rates[side].append(n * 1e9 / elapsed)
            client_cpu[side] += sum(me.cpu_times()[:2]) - c0
            wall[side] += elapsed / 1e9
    cpu = [round(sum(p.cpu_times()[:2]) - c, 2) for p, c in zip(procs, cpu0, strict=True)]
    single_cpu = [round(sum(p.cpu_times()[:2]) - c, 2)
                  for p, c in zip(single_procs, single0, strict=True)]
    calls_each = rounds * calls * CLIENTS
    # CPU per call of the workers: equal on both sides means the workers share nothing
    # that serialises them, so throughput scales with the cores they are given
    per_call = {"one_worker": round(sum(single_cpu[1:]) / calls_each * 1e3, 3),
                "two_workers": round(sum(cpu[1:]) / calls_each * 1e3, 3)}
    for sessions in pools:
        for s in sessions:
            await s.close()
    single, double = Sample.of(rates[0]), Sample.of(rates[1])
    speedup = double.median_ns / single.median_ns
    # each round's two bursts ran back to back: their ratio shares the machine's load
    paired = statistics.median(b / a for a, b in zip(rates[0], rates[1], strict=True))
    q = {side: _percentiles(lat[i]) for i, side in ((0, "one_worker"), (1, "two_workers"))}
    progress(f"  1 worker {single.median_ns:.0f}/s p50 {q['one_worker'][0]:.1f} ms, "
             f"2 workers {double.median_ns:.0f}/s p50 {q['two_workers'][0]:.1f} ms: "
             f"{speedup:.2f}x (paired bursts: {paired:.2f}x)")
    return Figure(
        "serve 2 workers vs 1, 16 MCP clients", double, single, "vak serve --workers 1",
        f">= {TARGET}x", speedup >= TARGET, unit="calls/s",
        note=f"{speedup:.2f}x; raw JSON-RPC over HTTP/1.1 keep-alive, 16 sessions; "
             "client shares the 2 cores",
        extra={"speedup": round(speedup, 3), "paired_speedup_median": round(paired, 3),
               "two_worker_cpu_s": {"front": cpu[0], "workers": cpu[1:]},
               "one_worker_cpu_s": {"front": single_cpu[0], "workers": single_cpu[1:]},
               "worker_cpu_ms_per_call": per_call,
               # how many cores the workers got: the machine's other load decides this
               "worker_cores_used": {"one_worker": round(sum(single_cpu[1:]) / wall[0], 2),
                                     "two_workers": round(sum(cpu[1:]) / wall[1], 2)},
               "client_cpu_s": {"one_worker": round(client_cpu[0], 2),
                                "two_workers": round(client_cpu[1], 2)},
               "latency_ms": {k: {"p50": round(v[0], 2), "p99": round(v[1], 2)}
                              for k, v in q.items()}})


def _percentiles(times_ns: list[float]) -> tuple[float, float]:
    ordered = sorted(times_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) / 1e6, p99 / 1e6
