"""A Retry-After holds its endpoint back only on a 429 over the noise: a gateway's token bucket answers
``Retry-After: 1`` (whole seconds) for a wait of milliseconds, and each probe past the limit meets a lone 429."""

from __future__ import annotations

import asyncio

import pytest

from bench.support.gateway_sim import Bucket, simulate
from connectors.rate_limiter import EndpointLimiters
from tests.support.fake_clock import FakeClock


def test_a_lone_429_with_retry_after_holds_back_its_own_request_only() -> None:
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, clock=clock, sleep=clock.sleep)
    for _ in range(50):  # half a second of uploads getting through
        clock.now += 0.01
        limiters.on_success("upload")
    limiters.on_throttle("upload", 1.0)  # a lone 429 among dozens of answers: no sign of the limit

    async def next_upload() -> float:
        await limiters.acquire("upload")
        return clock.now

    started = clock.now
    assert asyncio.run(next_upload()) - started < 0.1


@pytest.mark.parametrize("seed", range(3))
def test_not_told_a_limit_answered_with_retry_after_a_run_finds_it(seed: int) -> None:
    """Each lone 429 held its endpoint back a whole second: a run got 19-37% of R."""
    rate = 100.0
    result = simulate(lambda c: EndpointLimiters(10 * rate, clock=c, sleep=c.sleep), 30.0,
                      workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": rate * 0.15},
                      gateway=Bucket(rate, int(rate // 10)), jitter=0.3, retry_after=1.0, seed=seed)
    assert result.count(5.0, 30.0, ok=True) / 25.0 >= 0.9 * rate
    assert result.share_429(5.0, 30.0) <= 0.05
