"""Session 22: an attach limit not told, answers with jitter: attach learns its own limit's touches as noise.

Virtual-time simulation through ``EndpointLimiters.acquire`` (``sim_s22``): one gateway bucket of 100/s holding 10 for
the whole client and attaches also through a bucket of one at 10/s (issue 12's harsh case with the attach limit),
answers 20 ms +-30% later, no random 429s; look-ups at 15/s, attaches and uploads as fast as 4 and 16 workers go;
not told any limit (ceiling 1000/s). Seeds 0 and 1: attach settles at its limit, where a bucket of one refuses ~20% of
attaches that arrive with jitter; the seconds there are "at or under the last cut", so they teach attach's controller
20% noise; it then climbs to twice the limit (16-20 attaches/s sent, half refused) and, cut back to 10/s, stays there
with half its attaches refused (10 of 20 is not significant against 1.5 x 20% + 3%). Over the second half of 30 s:
8.9% of all requests and 51% of attaches answered 429, 6.9 attaches/s. 9078226 did no better here (attach 2-6.5/s,
12-22% of all requests 429), so not from 9513ce3/5e7345f; with 9513ce3's told attach limit the same runs have 1.7%.
Not fixed: a touch of a bucket of one with jitter and random noise look alike to the noise learning.
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from tests.breaker.sim_s22 import Bucket, VirtualClock, simulate


@pytest.mark.xfail(strict=True, reason="known gap: at a bucket of one with jitter, attach's own 429s (~20%) are "
                   "learned as noise; attach then sends up to twice its limit with half refused")
@pytest.mark.parametrize("seed", [0])  # seed 1 passes since bee0102 (noise spells of 2/3 s); seed 5 has 5.9%
def test_an_attach_limit_not_told_keeps_429s_few_with_jitter(seed: int) -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                      gateway=Bucket(100.0, 10.0), endpoint_buckets={"attach": Bucket(10.0, 1.0)}, jitter=0.3,
                      seed=seed)
    assert result.share_429(15.0, 30.0) <= 0.05  # 9513ce3/5e7345f: 8.9% (seeds 0 and 1)
    assert result.share_429(15.0, 30.0, "attach") <= 0.25  # 51%
