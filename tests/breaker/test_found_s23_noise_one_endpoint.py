"""Session 23: random 429s on one endpoint only, since 6244c15 capped an endpoint's noise at the whole client's.

Virtual-time simulation through ``EndpointLimiters.acquire`` (``sim_s22``): no gateway limit, uploads asked at 60/s
(8 workers), attaches at 30/s (4 workers), 10% of attaches refused at random (a gateway's noise that only that
route shows: another backend, another shard), answers 20 ms +-30% later, not told any limit (ceiling 1000/s).
The whole client's learned noise is about 3% (attach's 10% diluted by the uploads), so attach's own 10% is capped
to it: a share of 10% is then over 1.5 x 3% + 3% on any twenty answers, and attach cuts by 18% again and again.
Attaches over seconds 5-30: 6244c15 14.7-21.7/s (seeds 0-5), 6244c15^ 26.3-27.2/s (27/s is all of them). The same
with look-ups (customer) in place of attaches: 13.6-26.8/s against 24.5-27.2/s.
Not fixed: capping at the larger of the whole client's noise and half the endpoint's own gave back 19-26.6/s here but
took the attach-jitter sweep from 7.93 to 6.69 attaches/s (seeds 0-19): telling an endpoint's random 429s from its own
limit touched with jitter needs more than the two learned shares (e.g. whether its 429s come at rates well under its
last cut too).
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from tests.breaker.sim_s22 import VirtualClock, simulate


@pytest.mark.xfail(strict=True, reason=(
    "known gap (session 23, from 6244c15): an endpoint's noise capped at the whole client's cuts it again and again "
    "on random 429s only it gets (attaches 15-22/s of 27/s)"))
@pytest.mark.parametrize("seed", [1, 3])
def test_random_429s_on_one_endpoint_do_not_hold_it_under_its_demand(seed: int) -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 8, "attach": 4}, demand={"upload": 60.0, "attach": 30.0},
                      noise_on={"attach": 0.1}, jitter=0.3, seed=seed)
    assert result.count(5.0, 30.0, "attach", ok=True) / 25.0 >= 24.0  # 6244c15: 14.7 / 21.7; 6244c15^: 26.3 / 26.9
