"""The steps every rate simulation repeats: hand the answers due by now to the controller(s), at their own time;
pick the next request of several endpoints.

``pending`` holds (answered at, [endpoint,] throttled, sent at) tuples as a heap (a sorted list is one too).
"""

from __future__ import annotations

import heapq

from connectors.rate_limiter import EndpointLimiters
from tests.support.fake_clock import FakeClock
from transforms.rate_control import RateController


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
