"""A gateway whose bucket holds one request (R = 10 holding R/10, or an attach-only limit of R/10 holding one), the run
told its limit, in virtual time (requests reach the gateway up to 5 ms apart): requests paced at the limit are refused
whenever one comes early, so a touch of the configured limit holds the rate at 95% of it a minute."""

from __future__ import annotations

from statistics import median

import pytest

from bench.support.gateway_sim import ON_THE_WAY_S, Bucket, Outcome, run_case, simulate
from connectors.rate_limiter import EndpointLimiters

SEEDS = range(3)


def median_of_seeds(case: str, rate: float, *, told: bool) -> Outcome:
    """The median share of R (and of 429s) of ``run_case`` over SEEDS."""
    outcomes = [run_case(case, rate, told=told, seed=seed) for seed in SEEDS]
    return Outcome(median(o.share_of_r for o in outcomes), median(o.share_429 for o in outcomes))


@pytest.mark.parametrize(("case", "rate"), [("harsh", 10.0), ("attach", 100.0), ("attach", 10.0)])
def test_told_a_bucket_of_one_a_run_gets_nine_tenths_of_it(case: str, rate: float) -> None:
    outcome = median_of_seeds(case, rate, told=True)
    assert outcome.share_of_r >= 0.90 and outcome.share_429 <= 0.05, outcome


def test_told_an_attach_limit_answered_with_retry_after_attaches_go_at_three_quarters_of_it() -> None:
    rate = 100.0

    def got(seed: int) -> float:
        result = simulate(lambda c: EndpointLimiters(rate, endpoint_ceilings={"attach": rate / 10}, clock=c,
                                                     sleep=c.sleep), 30.0,
                          workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": rate * 0.15},
                          gateway=Bucket(rate, int(rate // 10)), endpoint_buckets={"attach": Bucket(rate / 10, 1)},
                          jitter=0.3, retry_after=1.0, on_the_way=ON_THE_WAY_S, seed=seed)
        return result.count(5.0, 30.0, "attach", ok=True) / 25.0

    assert median(got(seed) for seed in SEEDS) >= 0.75 * rate / 10
