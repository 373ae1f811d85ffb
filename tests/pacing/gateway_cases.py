"""The pacing cases of the end-to-end bench (bench/bench_e2e.py) in virtual time: the real limiters against the
sandbox's token buckets, 16 upload, 4 attach and 4 look-up workers, look-ups at 0.15 R, 20 ms +-30% answers."""

from __future__ import annotations

from dataclasses import dataclass

from bench.support.gateway_sim import Bucket, simulate
from connectors.rate_limiter import EndpointLimiters


@dataclass(frozen=True)
class Outcome:
    share_of_r: float  # what got through per second (attaches in the attach case), over R (R/10)
    share_429: float  # of all requests


def run_case(case: str, rate: float, *, told: bool, seed: int, seconds: float = 30.0) -> Outcome:
    """``case``: ``harsh`` (a bucket of R/s holding R/10), ``attach`` (and an attach-only bucket of R/10 holding one),
    ``noise`` (harsh and 10% of requests 429 at random). Measured from the fifth second on."""
    ceiling = rate if told else 10 * rate
    own = {"attach": rate / 10} if case == "attach" and told else None
    result = simulate(lambda c: EndpointLimiters(ceiling, endpoint_ceilings=own, clock=c, sleep=c.sleep), seconds,
                      workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": rate * 0.15},
                      gateway=Bucket(rate, max(1, int(rate // 10))), jitter=0.3, seed=seed,
                      endpoint_buckets={"attach": Bucket(rate / 10, 1)} if case == "attach" else None,
                      noise=0.1 if case == "noise" else 0.0)
    endpoint, target = ("attach", rate / 10) if case == "attach" else (None, rate)
    got = result.count(5, seconds, endpoint, ok=True) / (seconds - 5)
    return Outcome(got / target, result.share_429(5, seconds))
