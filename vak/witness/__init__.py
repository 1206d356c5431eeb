"""C2SP tlog-witness for VAK logs: cosignatures, the witness server and the log's client.

See docs/FLEET.md ("Witnesses"). Modules: :mod:`~vak.witness.cosignature`
(tlog-cosignature/v1), :mod:`~vak.witness.note` (notes with several signature
types), :mod:`~vak.witness.server`, :mod:`~vak.witness.client`,
:mod:`~vak.witness.sidecar` (``LOG.witness`` and K-of-N checks).
"""
