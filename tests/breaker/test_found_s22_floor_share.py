"""Session 22: a shard run's share falling under the controllers' floor, and back, forgets the rate they found.

``RateController.set_ceiling`` scales a controller that met a limit by the share (``rate * new / old``) and clamps it
to the new floor. Under a share below what the found rate scales to (the floor, 0.5/s, or the ceiling itself when
that is lower) the clamp keeps ``floor`` instead, and the next share scales that: the whole client cut to 42.5 of 100
(limit found), given a share of 0.5 and then 100 again, was at 100, attach cut to 3.6 of its told 10 at 10. Endpoint
ceilings (9513ce3) make it common: attach told 10 of a rate of 100 is under 0.5/s from 20 shard runs on
(``share_each(100, 20)`` = 4, attach 0.4, its floor and ceiling), and the default fan-out is 32 runs at once.
Fixed: the rate and last trouble's rate as the share scaled them before the clamp are kept while the clamped rate
stays as it was, and the next share scales those.
"""

from __future__ import annotations

from connectors.rate_limiter import EndpointLimiters
from tests.support.fake_clock import FakeClock


def _cut() -> tuple[EndpointLimiters, dict[str, float]]:
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, endpoint_ceilings={"attach": 10.0}, start_share=1.0, clock=clock,
                                sleep=clock.sleep)
    for _ in range(40):
        clock.now += 0.1
        limiters.on_success("attach")
    for _ in range(6):  # a wall of 429s on attach: heard by the whole client too (the first ones)
        clock.now += 0.1
        limiters.on_throttle("attach", None, sent_at=clock.now - 0.02)
    return limiters, limiters.rates()


def test_a_share_under_the_floor_and_back_keeps_what_was_found() -> None:
    limiters, found = _cut()
    assert found["all"] < 50.0 and found["attach"] < 5.0
    for share in (50.0, 0.5, 0.1, 100.0):
        limiters.set_ceiling(share)
    rates = limiters.rates()
    assert rates["all"] <= found["all"] + 0.1  # 9513ce3: 100.0 (found 42.5)
    assert rates["attach"] <= found["attach"] + 0.1  # 9513ce3: 10.0 (found 3.6)


def test_a_share_under_the_floor_still_goes_at_the_floor() -> None:
    limiters, _ = _cut()
    limiters.set_ceiling(0.1)
    assert limiters.rates()["all"] == 0.1 and limiters.rates()["attach"] == 0.0  # 0.01/s, rounded
    assert limiters.limiters["attach"].rate == limiters.controllers["attach"].config.ceiling


def test_a_share_under_the_slow_starts_least_rate_and_back_keeps_the_slow_start() -> None:
    """The same in the slow start, whose least rate (10/s, ``start_min``) holds a share's rate up: a run not told the
    limit (ceiling 1000/s, slow start at 125/s) given a share of 30/s (32 shard runs) went at 10/s, and given its
    whole rate again at 330/s (125 expected); a share of 0.3/s and back: 1000/s, the slow start skipped."""
    limiters = EndpointLimiters(1000.0)
    assert limiters.rates()["all"] == 125.0
    limiters.set_ceiling(30.25)
    limiters.set_ceiling(1000.0)
    assert limiters.rates()["all"] <= 125.0  # 9513ce3: 330.6
    limiters.set_ceiling(0.3)
    assert limiters.rates()["all"] == 0.3
    limiters.set_ceiling(1000.0)
    assert limiters.rates()["all"] <= 125.0  # 9513ce3: 1000.0
