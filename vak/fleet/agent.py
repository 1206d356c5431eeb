"""The kernel's background fleet agent: ship the log, send checkpoints to witnesses.

It is a *reader* of the kernel's files (``LOG``, ``LOG.ckpt``), never part of
the write path: one daemon thread wakes every ``interval_ms`` (or at once when
the writer's checkpoint listener calls :meth:`FleetAgent.notify`), ships what is
new (:func:`vak.fleet.ship.ship_log`) and sends the newest checkpoint to the
witnesses (:class:`vak.witness.client.CheckpointPusher`). An invocation never
waits for it. A store or witness that is down is retried on the next tick; a
shipment the store refuses (gap, fork, rollback) stops shipping for this
kernel (the incident is in the store) and is kept in :attr:`FleetAgent.error`.
``close()`` runs one last round after the audit log closed, so the final
checkpoint is shipped too.

Example::

    >>> agent = FleetAgent.start(settings, log_path, log_pub_path)   # doctest: +SKIP
    >>> agent.close()                                                # doctest: +SKIP
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson

from vak.audit.keys import load_trusted_keys
from vak.errors import FleetError, FleetRefusedError, KeyFileError, WitnessError
from vak.fleet.settings import FleetSettings
from vak.fleet.ship import checkpoint_file, ship_log
from vak.witness.client import CheckpointPusher, WitnessEndpoint
from vak.witness.cosignature import load_witness_keys
from vak.witness.note import log_checkpoint

__all__ = ["FleetAgent"]


class FleetAgent:
    """One kernel's shipper and witness client (see the module docstring)."""

    def __init__(self, settings: FleetSettings, log: Path, log_pub: Path) -> None:
        self.settings, self.log, self.log_pub = settings, Path(log), Path(log_pub)
        self.error: str | None = None
        self.refused: FleetRefusedError | None = None
        self.shipped_size = 0
        self._conn: Any = None
        self._ckpt_offset = 0
        self._pushed_size = -1
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._round = threading.Lock()
        self._notified: str | None = None
        keys = load_witness_keys(settings.witness_keys) if settings.witness_keys else []
        endpoints = [WitnessEndpoint(url) for url in settings.witnesses]
        self.pusher = CheckpointPusher(self.log, endpoints, keys) if endpoints else None
        self._thread = threading.Thread(target=self._loop, name="vak-fleet-agent", daemon=True)

    @classmethod
    def start(cls, settings: FleetSettings, log: Path, log_pub: Path) -> FleetAgent:
        agent = cls(settings, log, log_pub)
        agent._thread.start()
        return agent

    def notify(self, signed: Any) -> None:
        """A checkpoint listener (``AuditLog.add_checkpoint_listener``): wake the agent.

        Runs on the writer's notifier thread, so it only records the note.
        """
        self._notified = signed.note
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.interval_ms / 1000)
            self._wake.clear()
            if not self._stop.is_set():
                self.run_once()

    def run_once(self) -> None:
        """One round: push the newest checkpoint, then ship (its cosignatures too).

        Never raises for a peer's fault.
        """
        with self._round:
            if self.pusher is not None:
                self._push()
            if self.settings.ship_to and self.refused is None:
                self._ship()

    def _ship(self) -> None:
        from vak.fleet.store import connect, driver_errors, migrate

        try:
            if self._conn is None:
                self._conn = connect(self.settings.ship_to)
                migrate(self._conn)
            report = ship_log(self._conn, self.log, load_trusted_keys(self.log_pub))
            self.shipped_size = report.size
            self.error = None
        except FleetRefusedError as exc:
            self.refused, self.error = exc, exc.message
        except FleetError as exc:
            self.error = exc.message
            self._drop()
        except KeyFileError as exc:  # the .pub file is being rewritten or was removed
            self.error = exc.message
        except OSError as exc:  # the log or its key file is unreadable right now: next round
            self.error = f"{exc.filename or self.log}: {exc.strerror or exc}"
        except driver_errors() as exc:  # server gone, network: retry with a fresh connection
            self.error = f"fleet store: {type(exc).__name__}"
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _newest_note(self) -> str | None:
        path = checkpoint_file(self.log)
        if not path.exists():
            return None
        with path.open("rb") as f:
            f.seek(self._ckpt_offset)
            data = f.read()
        end = data.rfind(b"\n")
        if end < 0:
            return None
        self._ckpt_offset += end + 1
        last = data[:end].rsplit(b"\n", 1)[-1]
        note = orjson.loads(last).get("note")
        return note if isinstance(note, str) else None

    def _push(self) -> None:
        assert self.pusher is not None
        try:
            candidates = [n for n in (self._notified, self._newest_note()) if n is not None]
            self._notified = None
            sized = [(log_checkpoint(n)[0].checkpoint.size, n) for n in candidates]
            if not sized:
                return
            size, note = max(sized)
            if size <= self._pushed_size:
                return  # already cosigned (a witness would only repeat itself)
            if self.pusher.push(note):
                self._pushed_size = size
        except (WitnessError, orjson.JSONDecodeError) as exc:
            self.error = str(exc)
        except OSError as exc:
            self.error = f"{exc.filename or self.log}: {exc.strerror or exc}"

    def close(self) -> None:
        """Stop the thread, run one final round (the log is closed by now), disconnect."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.run_once()
        self._drop()
