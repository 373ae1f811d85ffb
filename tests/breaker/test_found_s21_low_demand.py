"""Session 21: a client sending less than its rate, 10% random 429s and no real limit (pure RateController).

The slow start grows per success: at 30 requests/s of demand under a ceiling of 1000/s it takes ~6 s to reach the
ceiling, learning no noise on the way (only seconds after a cut teach it). At the ceiling it is "done", and the
first cluster of random 429s cuts it with no noise known: halving cuts from 1000/s down to 12/s by 10.5 s, and
clusters at that rate go on cutting it (seed 3: 12-15/s from 10.5 s to the end, half the demand). Over the second
half of 20 s, seeds 3, 6 and 12 send 14, 21 and 20 requests/s of 30 (3551645: 24, 21, 23 at seeds 3, 6, 12; the
commit before, which starts at the ceiling and has the cascade in its first seconds: 27-30 on all 24 seeds). Over
60 s all recover. Tried: the slow start's growth capped at twice the rate of the last eight answers (30/s on every
seed, and look-ups first, test_found_s21_customers_first.py, fixed too), not kept: it changes the commit's tuning
(a unit test of its own expects 100 answers/s to take the rate to 400/s), one seed of test_found_s21_burst.py went
to 16% 429s, and session 20's told run with random 429s moved which seeds crawl (worst 34/s); left to the lead.
"""

from __future__ import annotations

import heapq
import random

import pytest

from tests.support.rate_answers import answer_controller
from transforms.rate_control import RateControl, RateController


def _sent_per_second(seed: int, *, demand: float = 30.0, noise: float = 0.10, seconds: float = 20.0) -> float:
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=1000.0), now=0.0)
    t = 0.0
    pending: list[tuple[float, bool, float]] = []
    sent_late = 0
    while t < seconds:
        t += max(1.0 / ctl.rate, 1.0 / demand)
        answer_controller(pending, t, ctl)
        sent_late += t > seconds / 2
        heapq.heappush(pending, (t + 0.02, rng.random() < noise, t))
    return sent_late / (seconds / 2)


# Seeds 3 and 6 pass since the slow start learns the noise it went through (the lead, after this session); 12 not.
@pytest.mark.parametrize("seed", [
    3,
    6,
    pytest.param(12, marks=pytest.mark.xfail(strict=True, reason="known gap: random 429s at a few requests a second "
                                             "cut a client to half its demand for seconds")),
])
def test_random_429s_do_not_hold_a_client_under_its_demand(seed: int) -> None:
    assert _sent_per_second(seed) >= 0.8 * 30.0
