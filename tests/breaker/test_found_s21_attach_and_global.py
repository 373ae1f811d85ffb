"""Session 21: an attach limit on top of a limit on the whole client (pure simulation through EndpointLimiters).

Issue 12's harsh case with "an attach-only limit of R/10 on top": one gateway bucket of 100/s holding 10 for all
endpoints, and attaches also through a bucket of one at 10/s; customer look-ups and attaches asked at 15/s each,
uploads as fast as allowed; answers 20 ms later with their send time; not told the limit (ceiling 1000/s).
Over the second half of 20 s: 18% of all requests answered 429 (customer look-ups 24%, with no limit of their
own) and 5 attaches/s (half what attach's limit allows), the whole client sending ~125/s against 100/s. The commit
before (3551645^) did the same (15%, 5 attaches/s): not caused by the slow start. The whole client's controller
has learned 6-13% noise by then (attach's 429s among what it hears, seen in the simulation), so the global
limit's 429s under 1.5 x noise + 3% never cut it again.
"""

from __future__ import annotations

import heapq

import pytest

from connectors.rate_limiter import EndpointLimiters
from tests.fake_clock import FakeClock


def _run(seconds: float) -> tuple[float, float]:
    """Returns (attaches/s that got through, 429 share of all requests) over the second half."""
    clock = FakeClock()
    limiters = EndpointLimiters(1000.0, clock=clock)
    demand = {"customer": 15.0, "upload": 1e9, "attach": 15.0}
    due = dict.fromkeys(demand, 0.0)
    last_any = -1.0
    g_tokens, a_tokens, stamp = 10.0, 1.0, 0.0
    sent = refused = attached = 0
    pending: list[tuple[float, str, bool, float]] = []
    while True:
        endpoint = min(demand, key=lambda e: due[e])
        t = max(due[endpoint], last_any + 1.0 / limiters.overall.rate)
        if t > seconds:
            break
        while pending and pending[0][0] <= t:
            at, answered, throttled, sent_at = heapq.heappop(pending)
            clock.now = at
            if throttled:
                limiters.on_throttle(answered, None, sent_at=sent_at)
            else:
                limiters.on_success(answered)
        clock.now = last_any = t
        g_tokens = min(10.0, g_tokens + (t - stamp) * 100.0)
        a_tokens = min(1.0, a_tokens + (t - stamp) * 10.0)
        stamp = t
        throttled = g_tokens < 1.0 or (endpoint == "attach" and a_tokens < 1.0)
        if not throttled:
            g_tokens -= 1.0
            a_tokens -= endpoint == "attach"
        if t >= seconds / 2:
            sent += 1
            refused += throttled
            attached += endpoint == "attach" and not throttled
        heapq.heappush(pending, (t + 0.02, endpoint, throttled, t))
        due[endpoint] = t + max(1.0 / limiters.limiters[endpoint].rate, 1.0 / demand[endpoint])
    return attached / (seconds / 2), refused / sent


@pytest.mark.xfail(strict=True, reason="known gap (not from 3551645): attach's own 429s heard by the whole client's "
                   "controller are learned as noise, and the global limit then runs at ~18% 429s")
def test_an_attach_limit_on_top_of_a_global_limit_keeps_429s_few() -> None:
    attaches, share = _run(20.0)
    assert share <= 0.10
    assert attaches >= 0.8 * 10.0
