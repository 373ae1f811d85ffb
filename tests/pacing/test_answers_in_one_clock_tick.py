"""Answers that share a clock reading (pure RateController on a fake clock).

Answers handled in one tick of a coarse clock (``time.monotonic`` on Windows before Python 3.13 ticks every
15.6 ms) or in one pass of a stalled event loop carry the same time. The accepted rate over no time is no division
by zero and no rate over the ceiling: the limiter raising in ``FinClient._request`` after a 201 would lose an
attach that was applied (its rows ``unknown``).
"""

from __future__ import annotations

import heapq
import math
import random

from transforms.rate_control import RateControl, RateController


def _cut_once_then_steady(ctl: RateController) -> float:
    t = 0.0
    for _ in range(100):
        t += 0.01
        ctl.hear(t, 200)
    for _ in range(10):
        t += 0.001
        ctl.hear(t, 429, sent_at=t - 0.0005)
    assert ctl.cuts >= 1
    for _ in range(100):  # a second of successes after the cut: the cut's 429s are out of the window
        t += 0.01
        ctl.hear(t, 200)
    return t


def test_a_429_and_ten_successes_in_one_clock_tick_do_not_divide_by_zero() -> None:
    ctl = RateController(RateControl(ceiling=1000.0))
    t = _cut_once_then_steady(ctl)
    ctl.hear(t, 429, sent_at=t - 0.02)
    for _ in range(12):  # raised ZeroDivisionError at the tenth
        ctl.hear(t, 200)
    assert ctl.rate <= ctl.config.ceiling


def test_answers_microseconds_apart_do_not_read_as_more_than_the_ceiling() -> None:
    ctl = RateController(RateControl(ceiling=1000.0))
    t = _cut_once_then_steady(ctl)
    ctl.hear(t, 429, sent_at=t - 0.02)
    for _ in range(10):  # a stalled event loop handles a backlog of answers: read 110000/s
        t += 1e-5
        ctl.hear(t, 200)
    assert ctl.rate <= ctl.config.ceiling


def test_a_coarse_clock_at_a_thousand_requests_a_second_never_raises() -> None:
    """Not told the limit (1000/s, bucket of 100, ceiling 10x), answers read on a clock ticking every 15.625 ms:
    no ZeroDivisionError (a rate read over no time raised 14-19 in 10 s)."""
    rng = random.Random(0)
    ctl = RateController(RateControl(ceiling=10_000.0))
    limit, burst, tick = 1000.0, 100.0, 0.015625
    tokens, stamp, t = burst, 0.0, 0.0
    pending: list[tuple[float, bool, float]] = []
    while t < 4.0:
        t += 1.0 / ctl.rate
        while pending and pending[0][0] <= t:
            at, refused, sent_at = heapq.heappop(pending)
            seen = math.floor(at / tick) * tick
            if refused:
                ctl.hear(seen, 429, sent_at=math.floor(sent_at / tick) * tick)
            else:
                ctl.hear(seen, 200)
        tokens, stamp = min(burst, tokens + (t - stamp) * limit), t
        refused = tokens < 1.0
        if not refused:
            tokens -= 1.0
        heapq.heappush(pending, (t + 0.02 + rng.uniform(0, 0.01), refused, t))
    assert ctl.rate < 2 * limit
