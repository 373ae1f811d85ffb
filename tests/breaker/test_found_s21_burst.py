"""Session 21: a gateway whose bucket holds two seconds' worth, at a few requests a second (pure RateController).

3551645 reads what got through over the last second (cuts or not) when the last cut was less than half a second
ago. At 10-20 requests/s the ten successes after a 429 that anchor the reading do not come in time, and the
reading fell back to every success of the last second counted from its first answer: the gateway's burst and the
answers to requests sent before the cut. The cut then kept a rate over the limit, and the run went on at 14-26%
429s. Since the last cut (as the commit before did in that case): 4-11%.
"""

from __future__ import annotations

import heapq
import random

import pytest

from tests.support.rate_answers import answer_controller
from transforms.rate_control import RateControl, RateController


def _simulate(limit: float, burst: float, ceiling: float, seconds: float, seed: int) -> tuple[float, float]:
    """Sending as fast as allowed against a token bucket; answers 20-30 ms later. Returns (successes/s, 429 share)."""
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=ceiling), now=0.0)
    tokens, stamp, t = burst, 0.0, 0.0
    pending: list[tuple[float, bool, float]] = []
    sent = refused = 0
    while t < seconds:
        t += 1.0 / ctl.rate
        answer_controller(pending, t, ctl)
        tokens, stamp = min(burst, tokens + (t - stamp) * limit), t
        throttled = tokens < 1.0
        if not throttled:
            tokens -= 1.0
        sent += 1
        refused += throttled
        heapq.heappush(pending, (t + 0.02 + rng.uniform(0, 0.01), throttled, t))
    return (sent - refused) / seconds, refused / sent


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("limit", "ceiling"), [(10.0, 100.0), (20.0, 200.0)])
def test_a_gateway_burst_at_a_few_requests_a_second_is_not_read_as_the_limit(limit: float, ceiling: float,
                                                                              seed: int) -> None:
    # 3551645: 23-26% 429s at 10/s (seeds 0-3), 14-15% at 20/s; its parent 10-15% and 5%; fixed 9-10%, 4-11%
    rate, share = _simulate(limit, burst=2 * limit, ceiling=ceiling, seconds=30.0, seed=seed)
    assert share <= 0.12
    assert rate >= 0.9 * limit
