"""The auditor's toolkit: readers of the audit format that judge and show a log.

* :mod:`vak.review.logread` reads entries leniently (a broken line is counted,
  never fatal: the verifier is the judge of integrity, these tools of meaning);
* :mod:`vak.review.replay` re-evaluates every recorded Cedar decision against the
  policy set in force when it was made, or against a proposed one ("what if");
  :mod:`vak.review.parallel` splits a long log across processes;
* :mod:`vak.review.report` renders one self-contained HTML timeline.

Like every reader of the format, this room never imports the kernel, the sandbox
or the host functions: an auditor runs it on a copy of the log alone.
"""
