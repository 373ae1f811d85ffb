"""The shared API rate limit: a Prefect global concurrency limit, created if missing, strict, leased in batches,
actually limiting."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

from connectors.prefect_limiter import PrefectSlotLease, ensure_rate_limit

pytestmark = [pytest.mark.usefixtures("prefect_harness")]


def test_limit_is_created_once_and_leased_in_batches_that_bound_the_rate() -> None:
    name = f"t-rate-{uuid.uuid4().hex[:8]}"

    async def go() -> tuple[bool, bool, float, object, int]:
        created = await ensure_rate_limit(name, 20)
        again = await ensure_rate_limit(name, 500)  # an existing limit is left as it is
        async with get_client() as client:
            found = await client.read_global_concurrency_limit_by_name(name)
        lease = PrefectSlotLease(name)
        started = time.monotonic()
        for _ in range(30):  # a burst of 5 (a quarter second's worth), then 25 more at 20 a second
            await lease.take(20.0)
        return created, again, time.monotonic() - started, found, lease.leases

    created, again, seconds, found, leases = asyncio.run(go())
    assert created and not again
    assert found.limit == 5 and found.slot_decay_per_second == 20  # type: ignore[attr-defined]
    assert seconds >= 1.0  # 25 slots past the burst at 20 a second: the server's rate holds
    assert leases == 6  # one round trip to the Prefect server per 5 requests, not per request


def test_a_lease_never_asks_for_more_than_the_limit_holds() -> None:
    name = f"t-small-{uuid.uuid4().hex[:8]}"

    async def go() -> int:
        await ensure_rate_limit(name, 8)  # a burst of 2
        lease = PrefectSlotLease(name)
        for _ in range(6):
            await lease.take(1000.0)  # a process that thinks it may send 1000/s still leases 2 at a time
        return lease.leases

    assert asyncio.run(go()) == 3


def test_a_missing_limit_is_an_error_not_an_unlimited_run() -> None:
    with pytest.raises(ConcurrencySlotAcquisitionError):
        asyncio.run(PrefectSlotLease(f"t-missing-{uuid.uuid4().hex[:8]}", timeout_s=10).take(1.0))
