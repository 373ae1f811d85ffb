"""One run at a time under a report location.

Every job under a report location shares one ledger index (documents attached by any of them count), and a run
reads its shard's part of it once, when the shard starts. Two runs working at the same time would each miss the
other's *in flight* documents and attach them again. So a run holds a lease, an object under
``<report>/_ledger/_active/``, renewed while it works and deleted when it ends; a run that finds another's fresh
lease does not start. A lease not renewed for ``stale_after_s`` (a killed run) no longer counts, and neither does
one whose process is gone from this very machine (a run killed here and resumed at once).

Two runs starting at the same moment both write, both see the other, and both refuse: safe, and rare.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location

HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0


@dataclass
class RunLease:
    """The lease of ``run_id`` under ``report_root``."""

    store: ObjectStore
    report_root: Location
    run_id: str
    stale_after_s: float = STALE_AFTER_S
    clock: Callable[[], float] = field(default=time.time)

    @property
    def _folder(self) -> Location:
        return self.report_root.child("_ledger", "_active")

    @property
    def _mine(self) -> Location:
        return self._folder.child(f"{self.run_id}.json")

    def check_free(self) -> None:
        """Read-only: ``SetupError`` when another run holds a fresh lease (the CLI asks before Prefect starts)."""
        self._refuse_if_taken(release=False)

    def acquire(self) -> None:
        """Take the lease, or ``SetupError`` naming the run that holds one (nothing of this run is left)."""
        self.renew()
        self._refuse_if_taken(release=True)

    def _refuse_if_taken(self, *, release: bool) -> None:
        for loc in self.store.list(self._folder):
            name = PurePosixPath(loc.key).name.removesuffix(".json")
            if name == self.run_id:
                continue
            age = self._age(loc)
            if age is not None and age < self.stale_after_s:
                if release:
                    self.release()
                raise SetupError(f"run {name} is working under this report location (lease renewed {age:.0f} s "
                                 "ago); runs under one report location must not overlap: wait for it to end")

    def renew(self) -> None:
        """Say this run is still working."""
        body = json.dumps({"run_id": self.run_id, "renewed_at": self.clock(), "host": socket.gethostname(),
                           "pid": os.getpid()}).encode()
        self.store.write(self._mine, body, content_type="application/json", overwrite=True)

    def release(self) -> None:
        """End the lease (the run ended, whichever way)."""
        self.store.delete(self._mine)

    def _age(self, loc: Location) -> float | None:
        try:
            lease = json.loads(self.store.read(loc))
            renewed = float(lease["renewed_at"])
        except Exception:  # gone meanwhile (that run ended) or unreadable: not a lease to respect
            return None
        if lease.get("host") == socket.gethostname() and not _alive(int(lease.get("pid", 0))):
            return None  # its process died on this machine: the lease is a dead run's, whatever its age
        return max(0.0, self.clock() - renewed)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
