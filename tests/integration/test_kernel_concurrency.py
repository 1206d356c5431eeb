"""8 threads invoking at once produce one verifiable audit chain."""

from __future__ import annotations

import threading

from kernel_helpers import DemoState, verify

from vak.errors import PolicyDeniedError
from vak.kernel import Kernel


def test_eight_threads_one_chain(demo_state: DemoState) -> None:
    per_thread = 12
    results: dict[int, list[object]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int, kernel: Kernel) -> None:
        out: list[object] = []
        try:
            barrier.wait()
            for j in range(per_thread):
                if j % 4 == 3:  # mix in denied host calls
                    try:
                        kernel.invoke("notes__read", {"path": "/etc/shadow"}, session=f"t{i}")
                    except PolicyDeniedError as exc:
                        out.append(("denied", exc.audit_seq))
                    continue
                inv = kernel.invoke("calculator__execute",
                                    {"operation": "add", "a": i, "b": j}, session=f"t{i}")
                out.append((inv.output["result"], inv.audit_seq_finished))
        except BaseException as exc:
            errors.append(exc)
        results[i] = out

    with Kernel.from_config(demo_state.config) as kernel:
        threads = [threading.Thread(target=worker, args=(i, kernel)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    seqs = []
    for i, out in results.items():
        assert len(out) == per_thread
        for j, (value, seq) in enumerate(out):
            if j % 4 != 3:
                assert value == i + j
            seqs.append(seq)
    assert len(set(seqs)) == len(seqs)  # every call has its own entry
    report = verify(demo_state)
    assert report.result.name == "OK", report.render()
