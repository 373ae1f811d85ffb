"""Session 23: slow limits (a few requests/s) and Retry-After; neither from 6244c15 (identical on 6244c15^).

1. One controller not told the limit against a bucket of one at 3/s (answers 20 ms +-30% later): after a cut the
   cubic climbs back in ~1.5 s whatever the rate, growth capped at twice what got through, and a cut on fewer than
   twenty answers needs four 429s (``wall_hits``): at 4-5/s against 3/s one request in four is refused, so four 429s
   take seconds, and the rate reaches 5.3/s (almost twice the limit) before the cut. Then the touch rule (three 429s
   in sixteen answers) cuts from the rate sent to 4.4/s, still over it, and the next cut halves: a 7 s cycle, 32% of
   requests refused over seconds 10-30 (limits 3-5/s, any bucket: 19-32%; at 10/s 5%). Halved under a bucket of one
   (10/s -> 1/s, the attach limit dropping mid-run in ``sim_s22``): 67% of attaches refused over the next 15 s.
   Tried: no touch when the rate is over 1.1 times the last cut's and what got through is half the rate sent
   (32% -> 25%), but limits halved at 3/s got worse (35% -> 43%) and the attach-jitter sweep fell 8.04 -> 7.84.
   The same gap as ``test_found_s21_lead_low_rate`` (6/s), here at 3/s and after a drop; the cliff rule (5 successes
   before the second 429 take seconds there) changes none of these runs.
2. Retry-After of 1 s on every 429 of a gateway of 100/s holding 10 (16 upload workers): each 429 stops uploads for
   a second, yet 2.3% of 429s is under what the whole client takes for noise (margin 3%), so its rate is never cut
   (it stays at the ceiling, 1000/s) and the next burst after the pause meets the limit again: 46 uploads/s of 100.
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from bench.support.gateway_sim import Bucket, VirtualClock, simulate
from tests.breaker.test_found_s23_cliff_bucket import _run, _share


@pytest.mark.xfail(strict=True, reason=(
    "known gap (not from 6244c15): at a few requests/s four 429s take seconds and the rate reaches twice the limit "
    "before a cut; 32% of requests refused against a bucket of one at 3/s"))
def test_a_slow_limit_not_told_keeps_429s_few() -> None:
    assert _share(_run(3.0, 1.0, 30.0, 0), 10.0, 30.0) <= 0.10  # 6244c15 and 6244c15^: 32%


@pytest.mark.xfail(strict=True, reason=(
    "known gap (not from 6244c15): 429s with Retry-After under the noise margin never cut the whole client's rate; "
    "every 429 then costs a second of uploads (46/s of 100)"))
def test_retry_after_on_a_global_limit_does_not_halve_the_uploads() -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 16}, gateway=Bucket(100.0, 10.0), retry_after=1.0,
                      jitter=0.3, seed=0)
    assert result.count(10.0, 30.0, "upload", ok=True) / 20.0 >= 80.0  # 6244c15 and 6244c15^: 46/s
