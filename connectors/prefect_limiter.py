"""The API rate limit shared by every process of a fanned-out run: a Prefect global concurrency limit.

A global concurrency limit with a slot decay is a token bucket kept by the Prefect server: ``limit`` is the
burst and ``slot_decay_per_second`` the sustained rate. Every shard run, on whatever machine, takes one
slot per request, so the API sees one rate however many workers there are. Strict: a missing limit is an
error, never an unlimited run.
"""

from __future__ import annotations

import logging
import math

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import rate_limit
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

log = logging.getLogger("kyc_attach.limiter")


class PrefectRateLimiter:
    """What ``FinClient`` needs of a limiter (``await acquire()``), backed by a Prefect global concurrency limit."""

    def __init__(self, name: str, *, timeout_s: float | None = None) -> None:
        self.name = name
        self.timeout_s = timeout_s

    async def acquire(self) -> None:
        """Wait for one slot of the limit; raises if the limit does not exist."""
        await rate_limit(self.name, occupy=1, timeout_seconds=self.timeout_s, strict=True)


async def ensure_rate_limit(name: str, per_second: float) -> bool:
    """Create the limit (burst ``ceil(per_second)``, decaying ``per_second`` slots a second) if it is missing.

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
                name=name, limit=max(1, math.ceil(per_second)), slot_decay_per_second=per_second,
            ))
        except ObjectAlreadyExists:  # another run created it meanwhile
            return False
        log.info("created global concurrency limit %s: %s requests per second", name, per_second)
        return True
