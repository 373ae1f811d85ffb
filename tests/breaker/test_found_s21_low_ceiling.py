"""Session 21: a run told a low limit crawls through its slow start (pure, fake clock).

3551645 starts the whole client at an eighth of its ceiling and doubles it every ``double_min`` (4) successes at
low rates. Told 5/s, the run starts at 0.625/s and needs 4 successes per doubling: 6.4 s + 3.2 s + 1.6 s, about
1 request/s for seven seconds (the commit before: 5/s at once). A fanned-out shard run whose share is small is
cut in proportion and crawls alike. At a few requests a second nothing is in flight before the first answer, which
is what the slow start guards against.
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
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
    # 3551645, told 5/s: [1, 0, 1, 1, 1, 1]; told 2/s: [0, 1, 0, 1, 1, 0]; told 10/s: [2, 1, 3, 4, 9, 10]
    assert sum(per_second[:3]) >= 0.6 * 3 * told
    assert per_second[2:] == [pytest.approx(told, abs=1)] * 4


def test_a_small_share_in_the_slow_start_does_not_crawl() -> None:
    ctl = RateController(RateControl(ceiling=400.0), now=0.0)  # a shard run started: 50/s, in its slow start
    assert ctl.set_ceiling(5.0, floor=0.5) >= 5.0 * 0.8  # 3551645: 0.625/s, then seconds per doubling
    assert ctl.rate <= 5.0
