"""Session 24: random 429s that start while a hold (29fcff0, ``RateControl.hold_s``) is on, and then stop.

One controller not told the limit (ceiling 1000/s) sends at its rate against a bucket of one at 10/s (the attach
limit), answers 20 ms +-30% later (``_run`` of session 23). For ten seconds (from 15, 20 or 25 s), 10% of the
requests that got through are refused at random anyway; then it stops. On 29fcff0 the seconds held at the top
taught nothing, so noise learned in a spell or two before (or between) holds stayed the median once the noise had
stopped: each noise cut at the plateau was again "a touch at the same rate" and held anew (the rate fell 3% a cut,
9.8 -> 9.5 -> 9.2 -> 9.0 -> 8.7/s), and the next probe past the bucket of one met half 429s that were no
significant excess over that noise: the rate climbed to 20/s with half refused and no cut.

90 runs (3 starts x 30 seeds), 429 share over the 15 s from 5 s after the noise stopped: 29fcff0^ mean 8.3% (23
over 10%), 29fcff0 10.1% (33 over 10%, up to 60%). Fixed: a second held at the top teaches a learned noise only
downwards (min(its share, the noise)); it never raises it, so the overshoot a gateway's bucket hides on the plateau
is still not learned: 7.0% (23 over 10%; the rest is the older gap of a halved cut's seconds never teaching, as on
29fcff0^). Also tried: no hold from a cut at the plateau (only from a touch past the top): 7.1%, but the
attach-jitter sweep fell 8.65 / 8.97 -> 8.58 / 8.78 attaches/s; dropped.
"""

from __future__ import annotations

from tests.breaker.test_found_s23_cliff_bucket import _run as _run_against_bucket
from tests.breaker.test_found_s23_cliff_bucket import _share


def _run(seed: int, *, noise: tuple[float, float] = (20.0, 30.0), seconds: float = 50.0) -> list[tuple[float, bool]]:
    """A controller not told the limit against a bucket of one at 10/s, 10% random 429s in the ``noise`` span."""
    return _run_against_bucket(10.0, 1.0, seconds, seed, noise=(*noise, 0.1))


def test_noise_that_stops_during_a_hold_leaves_few_429s() -> None:
    shares = [_share(_run(seed, noise=(start, start + 10.0), seconds=start + 30.0), start + 15.0, start + 30.0)
              for start in (15.0, 20.0, 25.0) for seed in range(30)]
    # hold_s 5 s: 10.1% and 33 without the fix, 7.0% and 23 with it; hold_s 3 s (final): 10.8% and 39 without, 9.1%
    # and 30 with it; 29fcff0^ (no hold): 8.3% and 23
    assert sum(shares) / len(shares) <= 0.095
    assert sum(s > 0.10 for s in shares) <= 33
