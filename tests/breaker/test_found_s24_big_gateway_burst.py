"""Session 24 (not from 29fcff0: the same on 29fcff0^): a gateway whose bucket holds a second's worth, and attach's
own bucket holding a few.

Virtual-time simulation through ``EndpointLimiters.acquire`` (``sim_s22``), the attach-jitter bench's setup (look-ups
at 15/s, uploads and attaches as fast as 16 and 4 workers go, answers 20 ms +-30% later, not told any limit) but the
whole-client gateway of 100/s holds 100 (not 10), and attach's bucket of 10/s holds 5 or 10 (not 1). Over 10-40 s
the whole client's 429 share was 17-22% on average (8 seeds each; 29fcff0, 29fcff0^ and fixed alike), up to 41-50%
(seeds 2 and 5), with ~100/s getting through: the client sent up to twice what the gateway allows, with 5% refused in
16-24 of the 30 seconds. The same gateway with attach's bucket of one (the bench): 2-3%; gateway holding 10: 2-4%.
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from bench.support.gateway_sim import Bucket, VirtualClock, simulate


@pytest.mark.xfail(strict=True, reason=(
    "known gap (not from 29fcff0): a gateway bucket of a second's worth hides the whole client's overshoot and, with "
    "attach's own bucket of 5-10, the client settles at up to twice the gateway's rate with 41-50% refused"))
@pytest.mark.parametrize(("attach_burst", "seed"), [(5.0, 5), (10.0, 2)])
def test_a_gateway_holding_a_second_keeps_429s_few(attach_burst: float, seed: int) -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    r = simulate(limiters, 40.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                 gateway=Bucket(100.0, 100.0), endpoint_buckets={"attach": Bucket(10.0, attach_burst)}, jitter=0.3,
                 seed=seed)
    assert r.share_429(10.0, 40.0) <= 0.10  # 29fcff0^, 29fcff0 and fixed: 50%, 41%
