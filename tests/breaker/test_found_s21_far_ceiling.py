"""Session 21: a ceiling a thousand times the limit (pure RateController simulation on a fake clock).

The slow start (3551645) starts at an eighth of the ceiling: told 100 000/s against a limit of 100/s, that is 125
times the limit. Every cut halves at most, and each cut waits for the 429 of a request sent after the previous one
(a round trip): seven halvings at thousands of requests a second before the rate is near the limit, ~450 429s in
the first second, 19% of a 20 s run (the commit before: 64%; from 100x: 3.7%, from 10x: 2.2%). The commit claims a
limit is found quickly from any ceiling; it is found within a second, but at far more than 5% 429s over the run.
Not small to fix: a first cut by the share of 429s (the rate sent times the share that got through, over many
answers) rather than by a rate measured over milliseconds would land near the limit in one or two round trips.
"""

from __future__ import annotations

import pytest

from tests.breaker.test_found_s21_burst import _simulate


@pytest.mark.xfail(strict=True, reason="known gap: from a ceiling 1000x the limit the slow start begins 125x over it "
                   "and halving cuts a round trip apart cost ~450 429s (19% of a 20 s run)")
def test_a_ceiling_a_thousand_times_the_limit_costs_few_429s() -> None:
    rate, share = _simulate(100.0, burst=10.0, ceiling=100_000.0, seconds=20.0, seed=0)
    assert rate >= 0.9 * 100.0
    assert share <= 0.05


@pytest.mark.parametrize("times", [1.0, 10.0, 100.0])
def test_ceilings_up_to_a_hundred_times_the_limit_cost_few_429s(times: float) -> None:
    rate, share = _simulate(100.0, burst=10.0, ceiling=100.0 * times, seconds=20.0, seed=0)
    assert rate >= 0.9 * 100.0
    assert share <= 0.05
