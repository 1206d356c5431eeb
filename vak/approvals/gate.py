"""The approval gate the mediation asks when a ``@approval("required")`` permit
allowed a call: find or open the request, and get a signed answer.

Three ways to answer, one record (the mediation writes it):

* an answer already in the store (``vak approvals approve ID``, or the MCP
  adapter's elicitation) for the same binding, unused and unexpired: consumed
  here, once, under the store lock;
* an *approver* callable given to the kernel: ``approver(request) -> Answer |
  None`` (or an awaitable of it), asked with a deadline -- the sooner of
  ``timeout`` and the invocation's own deadline; no answer in time is a deny;
* neither: the request stays pending and the call fails with
  :class:`~vak.errors.ApprovalPendingError`.

Every answer, whatever its way, is checked against the trust store (signature,
``approver`` role, revocation, expiry, approval id and binding) before it counts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from vak.approvals.answer import Answer
from vak.approvals.store import ApprovalRecord, ApprovalRequest, ApprovalStore
from vak.errors import ApprovalError
from vak.identity.trust import TrustStore

__all__ = ["CALLER_LOOP", "ApprovalGate", "Approver", "Outcome"]

#: an approver: the request -> a signed answer, None (no answer), or an awaitable of one
Approver = Callable[[ApprovalRequest], Answer | Awaitable[Answer | None] | None]

#: the event loop of an ``ainvoke`` caller (set by the kernel; ``asyncio.to_thread``
#: copies it into the invoking thread): an async approver runs there
CALLER_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "vak_approval_loop", default=None)

_log = logging.getLogger("vak.approvals")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The gate's result: the request, and the valid answer (None: none in time)."""

    request: ApprovalRequest
    answer: Answer | None
    #: why there is no answer ("pending", "timeout", or the refused answer's problem)
    why: str = ""


class ApprovalGate:
    """The store, the trust store that says who may approve, and an optional approver."""

    def __init__(self, store: ApprovalStore, trust: TrustStore | None,
                 approver: Approver | None = None, timeout: float = 300.0) -> None:
        self.store = store
        self.trust = trust
        self.approver = approver
        #: longest wait for the approver callable (seconds)
        self.timeout = timeout

    def check(self, answer: Answer, request: ApprovalRequest) -> None:
        """Raises: ApprovalError: ``answer`` is not a valid answer to ``request`` now."""
        answer.check(self.trust, request.id, request.binding, datetime.now(UTC))

    def _usable(self, rec: ApprovalRecord) -> bool:
        assert rec.answer is not None
        try:
            self.check(rec.answer, rec.request)
        except ApprovalError as exc:
            _log.warning("approval store: ignoring an answer: %s", exc.message)
            return False
        return True

    def open(self, fields: Mapping[str, Any], invocation: str) -> Outcome:
        """Step one (before the decision is recorded): a stored answer, or the request.

        Raises:
            ApprovalError: a store file is invalid (fail closed: the call is refused).
        """
        request, answer = self.store.open_request(fields, self._usable, invocation)
        return Outcome(request, answer, "" if answer is not None else "pending")

    def ask(self, request: ApprovalRequest, deadline: float, invocation: str) -> Outcome:
        """Step two: ask the approver callable (if any), at most until ``deadline``
        (``time.monotonic()`` seconds) or ``timeout``; a valid answer is stored,
        used by ``invocation``."""
        if self.approver is None:
            return Outcome(request, None, "pending")
        wait = max(0.0, min(self.timeout, deadline - time.monotonic()))
        try:
            answer = _call(self.approver, request, wait)
        except TimeoutError:
            return Outcome(request, None, f"no answer within {wait:.1f}s")
        if answer is None:
            return Outcome(request, None, "the approver gave no answer")
        if not isinstance(cast(object, answer), Answer):  # a caller's callable: check
            return Outcome(request, None, "the approver returned something not an Answer")
        try:
            self.check(answer, request)
            self.store.answer(request.id, answer, consume=invocation)
        except ApprovalError as exc:
            return Outcome(request, None, exc.message)
        return Outcome(request, answer)


def _call(approver: Approver, request: ApprovalRequest, wait: float) -> Answer | None:
    """Run ``approver`` (sync or async) for at most ``wait`` seconds.

    A sync approver runs on a daemon thread (a hung one cannot hold the call
    past its deadline); an async one on the ``ainvoke`` caller's loop, or on a
    private loop when there is none.

    Raises:
        TimeoutError: no result in time.
    """
    loop = CALLER_LOOP.get()
    box: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            result = approver(request)
            if inspect.isawaitable(result):
                if loop is not None and loop.is_running():
                    inner = asyncio.run_coroutine_threadsafe(_awaited(result), loop)
                    inner.add_done_callback(lambda f: _settle(box, f))
                    return
                result = asyncio.run(_awaited(result))
            box.set_result(result)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller: no answer
            box.set_exception(exc)

    threading.Thread(target=run, name="vak-approver", daemon=True).start()
    try:
        return box.result(timeout=wait)  # type: ignore[no-any-return]
    except concurrent.futures.TimeoutError:
        raise TimeoutError from None
    except Exception as exc:  # noqa: BLE001 - an approver bug is no answer, never approval
        _log.warning("approver failed: %s", type(exc).__name__)
        return None


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def _settle(box: concurrent.futures.Future[Any], inner: concurrent.futures.Future[Any]) -> None:
    if box.done():
        return
    exc = inner.exception()
    if exc is not None:
        box.set_exception(exc)
    else:
        box.set_result(inner.result())
