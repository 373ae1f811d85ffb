"""An endpoint that sends alone first, in virtual time: what it teaches the whole client does not hold the endpoints
that come after it."""

from __future__ import annotations

import pytest

from bench.support.gateway_sim import Bucket, simulate
from connectors.rate_limiter import EndpointLimiters

SEEDS = range(3)


@pytest.mark.parametrize("seed", SEEDS)
def test_uploads_after_attaches_alone_are_not_held_at_attachs_limit(seed: int) -> None:
    """Attaches alone for 10 s against an attach-only limit of R/10 (not told), then uploads and look-ups join."""
    rate = 100.0
    result = simulate(lambda c: EndpointLimiters(10 * rate, clock=c, sleep=c.sleep), 40.0,
                      workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": rate * 0.15},
                      gateway=Bucket(rate, int(rate // 10)), endpoint_buckets={"attach": Bucket(rate / 10, 1)},
                      active={"upload": (10.0, 40.0), "customer": (10.0, 40.0)}, jitter=0.3, seed=seed)
    assert result.count(20.0, 40.0, ok=True) / 20.0 >= 0.75 * rate  # 17% of R while attach's limit held them
    assert result.share_429(20.0, 40.0) <= 0.05
