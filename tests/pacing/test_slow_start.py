"""The slow start: a run starts at an eighth of its ceiling and doubles as answers come, so nothing piles up in
flight before the first answer, yet a run told a low limit (or given a small share) goes at it within a second or
two, and a ceiling far over the limit costs few 429s (pure, fake clock).
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from tests.pacing.simulations import controller_with_jittered_answers
from tests.support.fake_clock import FakeClock
from transforms.rate_control import RateControl, RateController


def _sent_per_second(limiters: EndpointLimiters, clock: FakeClock, seconds: int) -> list[int]:
    """Uploads as fast as the limiters allow, every one answered 20 ms later with success (no limit)."""
    per_second = [0] * seconds
    pending: list[float] = []
    t = 0.0
    while True:
        t = max(t + 1.0 / limiters.overall.rate, t + 1.0 / limiters.limiters["upload"].rate)
        if t >= seconds:
            return per_second
        while pending and pending[0] <= t:
            clock.now = pending.pop(0)
            limiters.on_success("upload")
        clock.now = t
        per_second[int(t)] += 1
        pending.append(t + 0.02)


@pytest.mark.parametrize("told", [2.0, 5.0, 10.0])
def test_a_run_told_a_low_limit_goes_at_it_within_a_second_or_two(told: float) -> None:
    clock = FakeClock()
    per_second = _sent_per_second(EndpointLimiters(told, clock=clock), clock, 6)
    # doubling every 4 successes from an eighth, told 5/s: [1, 0, 1, 1, 1, 1] requests in the first seconds
    assert sum(per_second[:3]) >= 0.6 * 3 * told
    assert per_second[2:] == [pytest.approx(told, abs=1)] * 4


def test_a_small_share_in_the_slow_start_does_not_crawl() -> None:
    ctl = RateController(RateControl(ceiling=400.0), now=0.0)  # a shard run started: 50/s, in its slow start
    assert ctl.set_ceiling(5.0, floor=0.5) >= 5.0 * 0.8  # scaled to an eighth: 0.625/s, then seconds per doubling
    assert ctl.rate <= 5.0


@pytest.mark.parametrize("times", [1.0, 10.0, 100.0])
def test_ceilings_up_to_a_hundred_times_the_limit_cost_few_429s(times: float) -> None:
    rate, share = controller_with_jittered_answers(100.0, burst=10.0, ceiling=100.0 * times, seconds=20.0, seed=0)
    assert rate >= 0.9 * 100.0
    assert share <= 0.05
