"""Session 21: customer look-ups alone first, then uploads (pure simulation through EndpointLimiters, fake clock).

The slow start grows the whole client's rate per success, "so an endpoint sending less than its rate should not run
ahead of it" (3551645). But per success is not per rate used: look-ups at 20/s (fewer customers at once than the
rate, or a slower API) for five seconds double it every four successes, to 825/s of its 1000/s ceiling before the first
upload. The uploads then meet a gateway bucket of 100/s holding 10 from there, as if there had been no slow start:
33 429s in their first two seconds (the commit before: 34; uploads from the start, with the slow start: 17).
Tried: growth capped at twice the rate of the last eight answers (14 429s here, 20 from a 40x ceiling instead of 47),
not kept: with 10% random 429s and a run told its limit it moved which seeds crawl (mean of 80 seeds 85.9 -> 83.3/s,
in sim2 of the findings); left to the lead.
"""

from __future__ import annotations

import heapq

import pytest

from connectors.rate_limiter import EndpointLimiters
from tests.support.fake_clock import FakeClock
from tests.support.rate_answers import answer_limiters


def _run(ceiling: float, look_ups_for: float = 5.0, seconds: float = 8.0) -> tuple[float, int]:
    """Returns (the whole client's rate when uploads start, 429s in the two seconds after)."""
    clock = FakeClock()
    limiters = EndpointLimiters(ceiling, clock=clock)
    tokens, stamp, t = 10.0, 0.0, 0.0
    pending: list[tuple[float, str, bool, float]] = []
    rate_at_switch = 0.0
    refused = 0
    while t < seconds:
        endpoint = "customer" if t < look_ups_for else "upload"
        gap = 1.0 / limiters.overall.rate
        if endpoint == "customer":
            gap = max(gap, 1.0 / 20.0)
        elif not rate_at_switch:
            rate_at_switch = limiters.overall.rate
        t += gap
        answer_limiters(pending, t, limiters, clock)
        clock.now = t
        tokens, stamp = min(10.0, tokens + (t - stamp) * 100.0), t
        throttled = tokens < 1.0
        if not throttled:
            tokens -= 1.0
        refused += throttled and look_ups_for <= t < look_ups_for + 2.0
        heapq.heappush(pending, (t + 0.02, endpoint, throttled, t))
    return rate_at_switch, refused


@pytest.mark.xfail(strict=True, reason="known gap: the slow start grows per success, not per rate used; look-ups at "
                   "20/s take it to the ceiling before the uploads come")
def test_look_ups_at_a_few_a_second_do_not_take_the_slow_start_to_the_ceiling() -> None:
    rate, refused = _run(1000.0)
    assert rate <= 4 * 20.0  # 3551645: 825/s
    assert refused <= 20  # 3551645: 33
