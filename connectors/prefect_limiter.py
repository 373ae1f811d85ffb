"""The API rate shared by every process of a fanned-out run: a Prefect global concurrency limit, leased in batches.

A global concurrency limit with a slot decay is a token bucket kept by the Prefect server: ``limit`` is the
burst and ``slot_decay_per_second`` the sustained rate. Taking one slot per request costs one round trip to
the Prefect server each (~60–80 ms locally: a fanned-out run was capped near 30 requests/s however many
workers it had), so each process leases a batch of slots — a quarter of a second's worth of its own current
rate — and spends them one per request through its own smooth limiters (``connectors.rate_limiter``), which
spread them out. A 429 cuts the process's rate and so the size of its next lease: the closed loop works
across workers, with Prefect as the only coordinator. Strict: a missing limit is an error, never an
unlimited run.
"""

from __future__ import annotations

import asyncio
import logging
import math

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import rate_limit
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

log = logging.getLogger("kyc_attach.limiter")

#: Seconds of a process's current rate leased per call to the Prefect server (and the limit's burst).
LEASE_S = 0.25


class PrefectSlotLease:
    """Slots of a Prefect global concurrency limit, leased ``lease_s`` seconds' worth at a time, spent one a request."""

    def __init__(self, name: str, *, lease_s: float = LEASE_S, timeout_s: float | None = None) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._lease_s = lease_s
        self._stock = 0
        self._max_lease: int | None = None  # the limit's size: a lease larger than it would never be granted
        self._lock = asyncio.Lock()
        self.leases = 0  # calls to the Prefect server, for tests and benchmarks

    async def take(self, rate: float) -> None:
        """Wait for one slot; ``rate`` (this process's send rate, requests/s) sizes the next lease."""
        async with self._lock:
            if self._stock <= 0:
                if self._max_lease is None:
                    self._max_lease = await _limit_size(self.name)
                self._stock = max(1, min(self._max_lease, round(rate * self._lease_s)))
                await rate_limit(self.name, occupy=self._stock, timeout_seconds=self.timeout_s, strict=True)
                self.leases += 1
            self._stock -= 1


async def _limit_size(name: str) -> int:
    """The limit's number of slots (its burst); 1 when it cannot be read (``rate_limit`` then reports why)."""
    async with get_client() as client:
        try:
            return max(1, (await client.read_global_concurrency_limit_by_name(name)).limit)
        except ObjectNotFound:
            return 1


async def ensure_rate_limit(name: str, per_second: float) -> bool:
    """Create the limit (burst: ``LEASE_S`` seconds' worth; decaying ``per_second`` slots a second) if missing.

    The burst is small on purpose: slots taken in any second are at most the burst plus the rate, so a large
    burst would let a fanned-out run pass the API's limit at its start.

    An existing limit is left as it is: operators may have tuned it in the UI. Returns whether it was created.
    """
    async with get_client() as client:
        try:
            found = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            pass
        else:
            if not found.slot_decay_per_second:
                raise ValueError(f"global concurrency limit {name!r} has no slot decay: it cannot be a rate limit")
            return False
        try:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                name=name, limit=max(1, math.ceil(per_second * LEASE_S)), slot_decay_per_second=per_second,
            ))
        except ObjectAlreadyExists:  # another run created it meanwhile
            return False
        log.info("created global concurrency limit %s: %s requests per second", name, per_second)
        return True
