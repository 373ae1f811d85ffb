"""A gateway that answers 429 to every request for a moment (80 ms: a few requests, one cut) while a run told its limit
goes at it, in virtual time: the touch of the ceiling holds the run under it a while, not for the rest of the run."""

from __future__ import annotations

from statistics import median

from bench.support.gateway_sim import ON_THE_WAY_S, Bucket, simulate
from connectors.rate_limiter import EndpointLimiters

SEEDS = range(3)
RATE = 100.0
STORM = (10.0, 10.08)  # long enough for one cut of the whole client, too short for a second


def test_told_its_limit_a_run_is_back_at_it_a_minute_after_a_brief_429_storm() -> None:
    after = STORM[1] + 60.0 + 5.0  # the touch's hold, and the climb back to the ceiling

    def got(seed: int) -> float:
        result = simulate(lambda c: EndpointLimiters(RATE, clock=c, sleep=c.sleep), after + 10.0,
                          workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": RATE * 0.15},
                          gateway=Bucket(RATE, int(RATE // 10)), jitter=0.3, on_the_way=ON_THE_WAY_S, seed=seed,
                          wall=STORM)
        assert result.count(*STORM, ok=False) > 0  # the storm was met
        return result.count(after, after + 10.0, ok=True) / 10.0

    # held for good after the storm, the run went at 95% of R to its end
    assert median(got(seed) for seed in SEEDS) >= 0.99 * RATE
