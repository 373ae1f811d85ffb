"""Session 22: a limit on the whole client with 10% random 429s, and small endpoints taken for "alone" (5e7345f).

Virtual-time simulation through ``EndpointLimiters.acquire`` (``tests/breaker/sim_s22.py``): customer look-ups and
attaches asked at 15/s each (four workers each), uploads as fast as sixteen workers go, against one gateway bucket
of 100/s holding 10 for all endpoints, 10% of requests answered 429 at random, answers 20 ms +-30% later; not told
the limit (ceiling 1000/s). Nothing limits single endpoints.

5e7345f lets an endpoint that has cut once and whose limiter is under half the whole client's rate answer its 429s
alone, with baseline 0 (``_held_by_own_limit``). Customer look-ups at 15/s are always under half of ~100/s: after
one cut (going ahead of the upload queue they take the whole client's debt token and see 5-13% 429s under a global
limit where uploads see 1-2%) every later 429 was theirs alone, judged against no baseline, and the controller
halved again and again: seeds 2 and 3 held look-ups at 4.8 and 6.3/s (attaches 5.1 and 5.3/s) over the second half,
the commit before (9078226) 10.9/s at the worst of ten seeds. Fixed: "alone" also needs the endpoint to send
(nearly) alone, 80% of the whole client's recent answers or more (a run's last attaches, 5e7345f's case).

Left: with seed 4 attaches fell to 5.5/s (and 8.9/s with seed 2). Since 5e7345f an endpoint's 429s are its own from
the first one when its share is well above the whole client's, and a small endpoint going ahead of the upload queue
has such a share under a global limit alone: the whole client no longer hears those 429s, its share (the baseline)
reads lower, and the endpoint's controller, halving from far above what it sends, cuts it under its demand. With the
lead's noise spells of two thirds of a second (bee0102) the worst of twelve seeds is 8.4 attaches/s (seed 3), and the
test sweeps the seeds.
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from bench.support.gateway_sim import Bucket, Result, VirtualClock, simulate


def _run(seed: int, seconds: float = 20.0) -> Result:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    return simulate(limiters, seconds, workers={"upload": 16, "attach": 4, "customer": 4},
                    demand={"customer": 15.0, "attach": 15.0}, gateway=Bucket(100.0, 10.0), noise=0.10, jitter=0.3,
                    seed=seed)


@pytest.mark.parametrize("endpoint", ["customer", "attach"])
def test_small_endpoints_under_a_global_limit_keep_their_demand(endpoint: str) -> None:
    """Over twelve seeds (single seeds move with any change of the controller: the lead's spells of two thirds of a
    second turned seed 4's 5.5 attaches/s into 9.7 and seed 3's 11.1 into 8.4), the worst and the median."""
    rates = sorted(_run(seed).count(10.0, 20.0, endpoint, ok=True) / 10.0 for seed in range(12))
    assert rates[0] >= 0.5 * 15.0  # 5e7345f: look-ups 4.8/s (seed 2); with spells of a second, attaches 5.5/s
    assert rates[6] >= 0.7 * 15.0
    shares = [_run(seed).share_429(10.0, 20.0) for seed in (2, 3)]
    assert max(shares) <= 0.22
