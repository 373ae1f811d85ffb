"""Session 23: the cliff rule (6244c15) against a gateway whose bucket holds more than one request.

One controller not told the limit (ceiling 1000/s) sends at its rate against a token bucket of 10/s holding 5,
answers 20 ms +-30% later. The cliff rule (``RateControl.cliff_after``) takes five successes after a cut before its
second 429 for "the cut held", and then cuts from 0.97 of the rate sent however much got through. A bucket of five
lets five through after any cut from its saved tokens, so every cut after the first descent was a "cliff": kept at
0.82 of the rate sent (14.9 -> 12.3 -> 11.9 -> 11.5/s against 10/s), what got through (10.0/s, the limit itself)
ignored; those seconds, at or under the last cut, taught 20% noise, and the rate then climbed to 22/s and stayed
there with 54-55% of requests refused (seeds 1, 3, 6, 7 of 8; 6244c15^: 19-22%).
Fixed: a cliff also needs what got through to be about half the rate sent (``cliff_through``), a bucket of one's
sign; the attach-jitter sweep (60 seeds) went 7.93 -> 8.02 (seeds 0-19) and 8.20 -> 8.24 attaches/s (20-59).

A limit that drops under a bucket of one (20/s -> 10/s, 16/s -> 8/s at 10 s): the cliff's cuts of 18% held the rate
just over the new limit (10.3-10.8/s, 20-50% refused); those seconds, at or under the last cut, taught 10-17% noise,
and the rate then climbed to twice the limit with half refused and no cut (a 40-share is not significant against
1.5 x 17% + 3% on twenty answers), or sat at 8.8/s against 8/s with 40% refused. 200 runs (limits 12-30/s, flat,
halved, to 70%): over 30% refused in 8 with the fix above alone, 0 on 6244c15^. Fixed: the seconds after a cliff's
cut do not teach the noise (as after a cut held at half the rate), and no cliff with noise learned (a cut then waits
for a significant excess); 0 of 200, and the sweep as above (8.04 / 8.24).
"""

from __future__ import annotations

import heapq
import random

import pytest

from transforms.rate_control import RateControl, RateController


def _run(limit: float, burst: float, seconds: float, seed: int, *, jitter: float = 0.3, latency: float = 0.02,
         drop: tuple[float, float] | None = None,
         noise: tuple[float, float, float] | None = None) -> list[tuple[float, bool]]:
    """(sent at, refused) of every request of a controller sending at its rate against a token bucket (``drop``: at
    that time, the bucket's rate becomes that; ``noise``: from, until, share: requests the bucket let through are
    refused at random in that span, their token spent)."""
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=1000.0), now=0.0)
    tokens, stamp, t = burst, 0.0, 0.0
    pending: list[tuple[float, bool, float]] = []
    sends: list[tuple[float, bool]] = []
    while t < seconds:
        t += 1.0 / ctl.rate
        while pending and pending[0][0] <= t:
            at, throttled, sent_at = heapq.heappop(pending)
            ctl.on_throttle(at, sent_at=sent_at) if throttled else ctl.on_success(at)
        if drop is not None and t >= drop[0]:
            limit = drop[1]
        tokens, stamp = min(burst, tokens + (t - stamp) * limit), t
        refused = tokens < 1.0
        if not refused:
            tokens -= 1.0
            refused = noise is not None and noise[0] <= t < noise[1] and rng.random() < noise[2]
        sends.append((t, refused))
        heapq.heappush(pending, (t + latency * (1.0 + jitter * (2.0 * rng.random() - 1.0)), refused, t))
    return sends


def _share(sends: list[tuple[float, bool]], start: float, end: float) -> float:
    window = [refused for t, refused in sends if start <= t < end]
    return sum(window) / len(window)


@pytest.mark.parametrize("seed", range(8))
def test_a_bucket_of_five_not_told_does_not_settle_at_twice_the_limit(seed: int) -> None:
    sends = _run(10.0, 5.0, 30.0, seed)
    assert _share(sends, 10.0, 30.0) <= 0.30  # 6244c15: 54-55% (seeds 1, 3, 6, 7); 6244c15^ and fixed: 19-22%


@pytest.mark.xfail(strict=True, reason=(
    "known gap (not from 6244c15): the seconds of an overshoot after a cut to just over the limit teach the whole "
    "client's controller ~10% noise, and it then climbs to twice the limit every ~5 s, cut only at 40% 429s"))
def test_a_bucket_of_five_not_told_keeps_429s_few() -> None:
    shares = [_share(_run(10.0, 5.0, 30.0, seed), 10.0, 30.0) for seed in range(4)]
    assert max(shares) <= 0.10  # 6244c15^ and fixed: 21-22%


@pytest.mark.parametrize(("limit", "seed"), [(20.0, 12), (20.0, 21), (16.0, 20), (16.0, 0)])
def test_a_limit_halved_under_a_bucket_of_one_is_not_learned_as_noise(limit: float, seed: int) -> None:
    sends = _run(limit, 1.0, 30.0, seed, drop=(10.0, limit / 2))
    assert _share(sends, 10.0, 30.0) <= 0.25  # first fix alone: 46%, 40%, 35%, 34%; 6244c15^: 9-21%; both: 11-20%


@pytest.mark.xfail(strict=True, reason=(
    "known gap (session 23, from 6244c15): answers in flight at a cut that succeed count as successes since it, so "
    "at 100 ms latency the descent takes cliff cuts of 18%, the last cut's rate lands over the limit and the spells "
    "under it teach 7-13% noise: 12-17% 429s in 8 of 32 runs (6244c15^: 1 of 32)"))
@pytest.mark.parametrize("seed", [7, 10])
def test_a_descent_at_a_long_latency_does_not_learn_its_overshoot_as_noise(seed: int) -> None:
    sends = _run(50.0, 5.0, 30.0, seed, latency=0.1)
    assert _share(sends, 10.0, 30.0) <= 0.05  # 6244c15 (and fixed): 14%, 12%; 6244c15^: 2%, 2%
