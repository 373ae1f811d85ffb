"""The steps every rate simulation repeats: hand the answers due by now to the controller(s), at their own time;
pick the next request of several endpoints; and one controller against a token-bucket gateway.

``pending`` holds (answered at, [endpoint,] throttled, sent at) tuples as a heap (a sorted list is one too).
"""

from __future__ import annotations

import heapq
import random

from connectors.rate_limiter import EndpointLimiters
from tests.support.fake_clock import FakeClock
from transforms.rate_control import RateControl, RateController


def answer_limiters(pending: list[tuple[float, str, bool, float]], now: float, limiters: EndpointLimiters,
                    clock: FakeClock) -> None:
    """Every answer due by ``now``, to ``limiters`` with the clock at its time."""
    while pending and pending[0][0] <= now:
        at, endpoint, throttled, sent_at = heapq.heappop(pending)
        clock.now = at
        if throttled:
            limiters.on_throttle(endpoint, None, sent_at=sent_at)
        else:
            limiters.on_success(endpoint)


def answer_controller(pending: list[tuple[float, bool, float]], now: float, ctl: RateController) -> None:
    """Every answer due by ``now``, to one controller."""
    while pending and pending[0][0] <= now:
        at, throttled, sent_at = heapq.heappop(pending)
        if throttled:
            ctl.on_throttle(at, sent_at=sent_at)
        else:
            ctl.on_success(at)



def next_request(due: dict[str, float], last_any: float, limiters: EndpointLimiters) -> tuple[str, float]:
    """The endpoint whose next request is due first (``due``: when each endpoint's own pace and demand allow one),
    and when it goes: no sooner than the whole client's rate allows after the last request of any endpoint."""
    endpoint = min(due, key=lambda e: due[e])
    return endpoint, max(due[endpoint], last_any + 1.0 / limiters.overall.rate)


def simulate_controller(limit: float, burst: float, ceiling: float, seconds: float, *, noise: float = 0.0,
              latency: float = 0.02, seed: int = 1) -> tuple[float, float, RateController]:
    """A client sending as fast as its controller allows against a token-bucket gateway (no Retry-After).

    Responses come back ``latency`` after sending, so the controller sees them late, as a real client does, and
    a 429 says when its request was sent (``FinClient`` tells it from the response's elapsed time).
    Returns (successes/s over the second half, 429 share over the whole run, the controller).
    """
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=ceiling), now=0.0)
    tokens, stamp, t = burst, 0.0, 0.0
    pending: list[tuple[float, bool, float]] = []
    ok_late = sent = refused = 0
    while t < seconds:
        t += 1.0 / ctl.rate
        answer_controller(pending, t, ctl)
        tokens, stamp = min(burst, tokens + (t - stamp) * limit), t
        throttled = tokens < 1.0 or rng.random() < noise
        if tokens >= 1.0 and not throttled:
            tokens -= 1.0
        sent += 1
        refused += throttled
        if not throttled and t > seconds / 2:
            ok_late += 1
        pending.append((t + latency, throttled, t))
    return ok_late / (seconds / 2), refused / sent, ctl
