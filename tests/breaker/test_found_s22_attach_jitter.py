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
Fixed in session 23: random noise is the gateway's, so it shows in the whole client's share too; an endpoint's
noise counts only up to the whole client's, and attach's own touches no longer excuse its 429s.
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from bench.support.gateway_sim import Bucket, VirtualClock, simulate

_OVERALL_NOISE = pytest.mark.xfail(strict=True, reason=(
    "known gap (session 23): the whole client's controller learns its own limit's 429s as noise (3.8% -> 6.1%) and "
    "climbs to 114/s against 100/s; the uploads' 429s, routed to their own controller, are within twice the whole "
    "client's share there, so neither cuts: 20% of all requests 429 (test_found_s20_noise's gap)"))


@pytest.mark.parametrize("seed", [*range(19), pytest.param(19, marks=_OVERALL_NOISE)])
def test_an_attach_limit_not_told_keeps_429s_few_with_jitter(seed: int) -> None:
    # Fixed in session 23: an endpoint's noise is at most the whole client's (``noise_at_most``). Before, 20 seeds gave
    # attach 429 shares up to 50% (seeds 0, 12, 15) and up to 8.1% of all requests; after it, at most 18% and 3.7%
    # (the cliff rule, ``RateControl.cliff_after``, then moved seed 19 onto another gap).
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                      gateway=Bucket(100.0, 10.0), endpoint_buckets={"attach": Bucket(10.0, 1.0)}, jitter=0.3,
                      seed=seed)
    assert result.share_429(15.0, 30.0) <= 0.05  # before: 8.1% (seed 0)
    assert result.share_429(15.0, 30.0, "attach") <= 0.25  # before: 50%


def _attaches(seed: int) -> tuple[float, float]:
    """(attaches/s that got through, 429 share of all requests) over seconds 15-30: the setup above."""
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                      gateway=Bucket(100.0, 10.0), endpoint_buckets={"attach": Bucket(10.0, 1.0)}, jitter=0.3,
                      seed=seed)
    return result.count(15.0, 30.0, "attach", ok=True) / 15.0, result.share_429(15.0, 30.0)


def test_an_attach_limit_not_told_is_held_near_it() -> None:
    # Session 24: a limit touched twice at the same rate is held there for ``RateControl.hold_s`` before the next probe
    # past it. Probing as soon as back (every ~2.5 s), seeds 20-59 got 8.24 attaches/s of 10 (held 3 s: 8.79).
    assert sum(_attaches(seed)[0] for seed in range(20, 60)) / 40 >= 8.7


@pytest.mark.parametrize("seed", [49, 59])
def test_no_hold_with_noise_learned(seed: int) -> None:
    # Held with noise learned, the whole client sat at 109/s against 100/s with 8% refused (under 1.5 x its 4% noise
    # + 3%) for 5 s at a time, and attach, refused with it, cut itself to 6.2 and 6.4/s (8.0 and 8.9 not held then).
    attaches, share_429 = _attaches(seed)
    assert attaches >= 7.8
    assert share_429 <= 0.05
