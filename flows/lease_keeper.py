"""Keeping a run's lease while it works: a heartbeat task, and what the run does when the lease is lost.

Used by the parent flow run and by every shard run of a fanned-out run alike (``connectors.run_lease``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from connectors.errors import LeaseLost
from connectors.run_lease import RunLease
from transforms.codes import Reason
from transforms.thresholds import FailureBudget

log = logging.getLogger("kyc_attach.lease")


@dataclass
class LeaseWatch:
    """Whether this process still holds its run's lease; once it is lost, every budget it watches is halted, so
    no new request is sent (a request already under way finishes and is recorded)."""

    lost: str | None = None
    _budgets: list[FailureBudget] = field(default_factory=list)

    def guard(self, budget: FailureBudget) -> None:
        """Halt ``budget`` when the lease is lost (at once if it is lost already)."""
        self._budgets.append(budget)
        if self.lost is not None:
            budget.halt(self.lost, Reason.lease_lost)

    def lose(self, reason: str) -> None:
        """The lease is gone: stop sending."""
        self.lost = reason
        for budget in self._budgets:
            budget.halt(reason, Reason.lease_lost)


async def keep_lease(lease: RunLease, watch: LeaseWatch) -> None:
    """Renew ``lease`` every heartbeat until cancelled; a renewal that finds the lease taken stops the sending,
    and so do renewals failing for most of a stale window (by this process's own elapsed time, which needs no
    clock to agree): another run may judge the lease dead before this one hears of it."""
    renewed = time.monotonic()
    while True:
        await asyncio.sleep(lease.terms.heartbeat_s)
        try:
            await asyncio.to_thread(lease.renew)
            renewed = time.monotonic()
        except LeaseLost as exc:
            log.error("%s; this run sends nothing more", exc)
            watch.lose(f"stopped: {exc}")
            return
        except Exception as exc:  # a missed renewal is retried next time
            log.warning("could not renew the run's lease (%s); trying again in %.0f s", type(exc).__name__,
                        lease.terms.heartbeat_s)
            if time.monotonic() - renewed >= lease.terms.stale_after_s - lease.terms.heartbeat_s:
                watch.lose(f"stopped: the lease of run {lease.terms.run_id} could not be renewed for "
                           f"{time.monotonic() - renewed:.0f} s, so another run may hold its customers now")
                return
