"""Session 20: random 429s and a real limit together (pure RateController simulation on a fake clock)."""

from __future__ import annotations

import random

import pytest

from tests.support.rate_answers import answer_controller
from transforms.rate_control import RateControl, RateController


def _run(seed: int, *, seconds: float = 40.0, noise: float = 0.10, drop_at: float = 15.0) -> tuple[float, float, float]:
    """Told 100/s; the gateway allows 100/s (bucket of 10) until ``drop_at``, then 75/s (another client came).

    Returns (successes/s and 429 share from drop_at + 5 s to the end, the rate at the end).
    """
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=100.0), now=0.0)
    t = stamp = 0.0
    tokens = 10.0
    pending: list[tuple[float, bool, float]] = []
    sent = ok = 0
    while t < seconds:
        t += 1.0 / ctl.rate
        limit = 100.0 if t < drop_at else 75.0
        answer_controller(pending, t, ctl)
        tokens, stamp = min(limit / 10, tokens + (t - stamp) * limit), t
        throttled = tokens < 1.0 or rng.random() < noise
        if not throttled:
            tokens -= 1.0
        if t >= drop_at + 5:
            sent += 1
            ok += not throttled
        pending.append((t + 0.02, throttled, t))
    return ok / (seconds - drop_at - 5), 1.0 - ok / sent, ctl.rate


@pytest.mark.xfail(strict=True, reason="known gap: seconds at or under the last cut's rate teach the noise even when "
                   "a lower limit makes them over it; a limit that drops under 10% random 429s is learned as 25% noise")
@pytest.mark.parametrize("seed", range(2))
def test_a_limit_that_drops_under_random_429s_is_followed(seed: int) -> None:
    # Found: the rate stays at 100/s (the ceiling) against 75/s for good, 25% of requests answered 429 (10% noise);
    # the same in 702c60c's parent. The seconds after the drop, at the rate of the last cut, taught the noise.
    _, share, rate = _run(seed)
    assert rate <= 0.9 * 100.0
    assert share <= 0.18
