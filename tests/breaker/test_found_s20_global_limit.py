"""Session 20: a limit on the whole client seen by every endpoint (pure simulation through EndpointLimiters).

Fake clock; three streams (customer look-ups and attaches at 15/s each, uploads as fast as allowed), each let go at
the pace of its endpoint's limiter and the whole client's, against a gateway token bucket of 100/s holding 10 for
all endpoints together, with 10% of requests answered 429 at random; answers come 20 ms later with their send time.
The run is not told the limit (ceiling 1000/s).
"""

from __future__ import annotations

import random

import pytest

from connectors.rate_limiter import EndpointLimiters
from tests.support.fake_clock import FakeClock
from tests.support.rate_answers import answer_limiters, next_request


def _run(seconds: float, *, limit: float = 100.0, burst: float = 10.0, ceiling: float = 1000.0, noise: float = 0.10,
         seed: int = 1, measure_from: float | None = None) -> tuple[float, float, EndpointLimiters]:
    """Returns (successes/s of all endpoints, 429 share, the limiters), measured from ``measure_from`` (by default
    the second half) to the end."""
    start = seconds / 2 if measure_from is None else measure_from
    rng = random.Random(seed)
    clock = FakeClock()
    limiters = EndpointLimiters(ceiling, clock=clock)
    demand = {"customer": 15.0, "upload": 1e9, "attach": 15.0}
    due = dict.fromkeys(demand, 0.0)
    last_any = -1.0
    tokens, stamp = burst, 0.0
    sent = ok = 0
    pending: list[tuple[float, str, bool, float]] = []
    while True:
        endpoint, t = next_request(due, last_any, limiters)
        if t > seconds:
            break
        answer_limiters(pending, t, limiters, clock)
        clock.now = last_any = t
        tokens, stamp = min(burst, tokens + (t - stamp) * limit), t
        throttled = tokens < 1.0 or rng.random() < noise
        if not throttled:
            tokens -= 1.0
        if t >= start:
            sent += 1
            ok += not throttled
        pending.append((t + 0.02, endpoint, throttled, t))
        pending.sort()
        due[endpoint] = t + max(1.0 / limiters.limiters[endpoint].rate, 1.0 / demand[endpoint])
    return ok / (seconds - start), 1.0 - ok / sent, limiters


@pytest.mark.parametrize("seed", range(4))
def test_a_global_limit_with_random_429s_is_found_by_someone(seed: int) -> None:
    # 702c60c: the upload controller cut for the global limit once (its share above the look-ups' early on), so
    # the whole client's controller stopped hearing the uploads' 429s ("a limit of its own"); the upload controller
    # compared its share with the others', which the same global limit raised as high, and never cut again.
    # Nobody answered the limit: seeds 0 and 1 had 49% and 48% of requests answered 429 over the second half (10%
    # is noise), the whole client sending ~2x R. The commit before kept 15-17%.
    rate, share, _ = _run(40.0, seed=seed)
    assert share <= 0.22
    assert rate >= 0.7 * 100.0


@pytest.mark.parametrize("seed", range(6))
def test_random_429s_on_every_endpoint_do_not_drag_a_told_run_down(seed: int) -> None:
    # No real limit, told 100/s, 10% of every endpoint's requests answered 429 at random. Comparing an endpoint's
    # share with the other endpoints' alone (and counting the noise only after five seconds) let endpoints cut
    # for noise: 61-84% of the rate over the second half (seeds 0-5), where session 19's code held 90-91%.
    rate, _, _ = _run(30.0, limit=1e6, burst=1e6, ceiling=100.0, noise=0.10, seed=seed)
    assert rate >= 0.8 * 100.0 * (1 - 0.10)
