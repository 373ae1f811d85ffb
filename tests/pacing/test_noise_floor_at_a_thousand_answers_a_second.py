"""The noise floor's test of recent 429s at a thousand answers a second and more: exact, cheap, never raising."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import pytest

from connectors.rate_limiter import EndpointLimiters
from transforms.noise_floor import NoiseFloor, _binomial_tail
from transforms.pacing_signal import Signal


def exact_tail(hits: int, n: int, p: Fraction) -> float:
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(hits, n + 1)))


@pytest.mark.parametrize(("hits", "n", "p"), [(600, 1100, Fraction(1, 2)), (420, 1500, Fraction(1, 4)),
                                              (1480, 2000, Fraction(3, 4))])
def test_the_tail_of_over_a_thousand_answers_is_exact(hits: int, n: int, p: Fraction) -> None:
    assert _binomial_tail(hits, n, float(p)) == pytest.approx(exact_tail(hits, n, p), rel=1e-9, abs=1e-15)


def test_a_wall_of_429s_at_1100_answers_a_second_on_one_endpoint_is_heard() -> None:
    now = [0.0]
    limiters = EndpointLimiters(2000.0, clock=lambda: now[0])
    for i in range(2200):
        now[0] = i / 1100
        limiters.on_throttle("upload", None)
    assert limiters.rates()["all"] < 2000.0  # all of the client's answers are 429s: the whole client cuts


def test_hearing_a_thousand_answers_a_second_stays_cheap() -> None:
    noise = NoiseFloor(spell_s=1.0, spells=3)
    started = time.perf_counter()
    for i in range(3000):  # a third of them 429s, judged against a noise of a half: nothing cuts, all stay recent
        noise.hear(i / 1000, Signal.THROTTLE if i % 3 == 0 else Signal.OK, share=0.5)
    assert time.perf_counter() - started < 1.0  # 3 ms a hear (10 s here) when each summed big-integer terms
