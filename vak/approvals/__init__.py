"""Human approval of host calls, bound to the exact call (docs/POLICY.md, 'Approvals').

* :mod:`vak.approvals.answer`: signed answers (an operator key with the
  ``approver`` role in the trust store);
* :mod:`vak.approvals.store`: pending requests and answers in the kernel's state
  dir, one file each, consumed once under a lock;
* :mod:`vak.approvals.gate`: what the mediation asks (stored answer, approver
  callable with a deadline, or pending).

The statement format and the call binding are :mod:`vak.audit.approval`.
"""

from __future__ import annotations

from vak.approvals.answer import Answer, sign_answer
from vak.approvals.gate import ApprovalGate, Approver
from vak.approvals.store import ApprovalRecord, ApprovalRequest, ApprovalStore

__all__ = ["Answer", "ApprovalGate", "ApprovalRecord", "ApprovalRequest", "ApprovalStore",
           "Approver", "sign_answer"]
