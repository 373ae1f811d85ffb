"""The shared API rate limit: a Prefect global concurrency limit, created if missing, strict, actually limiting."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

from connectors.prefect_limiter import PrefectRateLimiter, ensure_rate_limit

pytestmark = [pytest.mark.usefixtures("prefect_harness")]


def test_limit_is_created_once_and_bounds_the_rate() -> None:
    name = f"t-rate-{uuid.uuid4().hex[:8]}"

    async def go() -> tuple[bool, bool, float, object]:
        created = await ensure_rate_limit(name, 5)
        again = await ensure_rate_limit(name, 50)  # an existing limit is left as it is
        async with get_client() as client:
            found = await client.read_global_concurrency_limit_by_name(name)
        limiter = PrefectRateLimiter(name)
        started = time.monotonic()
        for _ in range(10):  # a burst of 5, then 5 more at 5 a second
            await limiter.acquire()
        return created, again, time.monotonic() - started, found

    created, again, seconds, found = asyncio.run(go())
    assert created and not again
    assert found.limit == 5 and found.slot_decay_per_second == 5  # type: ignore[attr-defined]
    assert seconds >= 0.6


def test_a_missing_limit_is_an_error_not_an_unlimited_run() -> None:
    with pytest.raises(ConcurrencySlotAcquisitionError):
        asyncio.run(PrefectRateLimiter(f"t-missing-{uuid.uuid4().hex[:8]}", timeout_s=10).acquire())
