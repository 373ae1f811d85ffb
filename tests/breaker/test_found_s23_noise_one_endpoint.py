"""Session 23: random 429s on one endpoint only, since 6244c15 capped an endpoint's noise at the whole client's.

Virtual-time simulation through ``EndpointLimiters.acquire`` (``sim_s22``): no gateway limit, uploads asked at 60/s
(8 workers), attaches at 30/s (4 workers), 10% of attaches refused at random (a gateway's noise that only that
route shows: another backend, another shard), answers 20 ms +-30% later, not told any limit (ceiling 1000/s).
The whole client's learned noise is 0: attach's 429s, a share well above the whole client's, are taken for a limit of
its own and never reach the whole client's controller. Attach learns 9-10% noise, capped to 0: a share over 2 x the
baseline + 3% on twenty answers cuts (no significance test under 5% noise), and attach cut 19 times in 30 s, down to
12/s at the end (6244c15^: 8 cuts, all in the first 10 s, then 63/s).
Attaches over seconds 5-30: 6244c15 14.7-21.7/s (seeds 0-5), 6244c15^ 26.3-27.2/s (27/s is all of them). The same
with look-ups (customer) in place of attaches (the same numbers); and look-ups asked at 20/s with 10% random 429s of
their own beside an attach limit (``sim_s22``, 12 seeds): 11.4/s on average (7.3 at worst) against 16.3 (10.9).
Not fixed: capping at the larger of the whole client's noise and half the endpoint's own gave back 19-26.6/s here
but took the attach-jitter sweep from 7.93 to 6.69 attaches/s (seeds 0-19; no cap at all: 7.43). Telling an
endpoint's random 429s from its own limit touched with jitter needs more than the two learned shares (e.g. whether
its 429s also come at rates well under its last cut).
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from bench.support.gateway_sim import VirtualClock, simulate


@pytest.mark.xfail(strict=True, reason=(
    "known gap (session 23, from 6244c15): an endpoint's noise capped at the whole client's cuts it again and again "
    "on random 429s only it gets (attaches or look-ups 15-22/s of 27/s)"))
@pytest.mark.parametrize(("endpoint", "seed"), [("attach", 1), ("attach", 3), ("customer", 1), ("customer", 3)])
def test_random_429s_on_one_endpoint_do_not_hold_it_under_its_demand(endpoint: str, seed: int) -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 8, endpoint: 4}, demand={"upload": 60.0, endpoint: 30.0},
                      noise_on={endpoint: 0.1}, jitter=0.3, seed=seed)
    assert result.count(5.0, 30.0, endpoint, ok=True) / 25.0 >= 24.0  # 6244c15: 14.7 / 21.7; 6244c15^: 26.3 / 26.9
