"""Many kernels, one verifiable record: ship each origin's log into PostgreSQL and verify it.

See docs/FLEET.md. Modules: :mod:`~vak.fleet.store` (connection, migrations),
:mod:`~vak.fleet.chain` (the checks shipper and verifier share),
:mod:`~vak.fleet.ship`, :mod:`~vak.fleet.verify`, :mod:`~vak.fleet.agent`
(the kernel's background shipper and witness client), :mod:`~vak.fleet.settings`.
"""
