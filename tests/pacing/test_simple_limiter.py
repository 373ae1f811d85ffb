"""The simple controller's limiters behind today's interface, and the switch that picks a controller."""

from __future__ import annotations

import asyncio

import pytest

from connectors.pacing_choice import VARIABLE, chosen_controller, make_limiters
from connectors.rate_limiter import EndpointLimiters
from connectors.simple_limiter import SimpleLimiters, TokenBucket
from tests.support.fake_clock import FakeClock


async def sends(limiters: SimpleLimiters, endpoint: str, count: int, clock: FakeClock) -> list[float]:
    times = []
    for _ in range(count):
        await limiters.acquire(endpoint)
        times.append(clock.now)
    return times


def test_a_bucket_spaces_requests_at_its_rate() -> None:
    async def go() -> None:
        clock = FakeClock()
        bucket = TokenBucket(10.0, burst_s=0.0, clock=clock, sleep=clock.sleep)
        for _ in range(11):
            await bucket.acquire()
        assert clock.now == pytest.approx(1.0)  # the first token is in hand, ten more take a second

    asyncio.run(go())


def test_the_configured_limit_paces_before_any_429() -> None:
    async def go() -> None:
        clock = FakeClock()
        limiters = SimpleLimiters(20.0, burst_s=0.0, clock=clock, sleep=clock.sleep)
        times = await sends(limiters, "upload", 21, clock)
        assert times[-1] == pytest.approx(1.0)

    asyncio.run(go())


def test_a_throttle_cuts_the_endpoint_and_the_whole_client() -> None:
    async def go() -> None:
        clock = FakeClock()
        limiters = SimpleLimiters(100.0, burst_s=0.0, clock=clock, sleep=clock.sleep)
        limiters.on_throttle("attach", None)
        assert limiters.rates()["attach"] == pytest.approx(70.0)
        assert limiters.rates()["all"] == pytest.approx(70.0)
        assert limiters.rates()["upload"] == 100.0

    asyncio.run(go())


def test_retry_after_holds_back_only_its_endpoint() -> None:
    async def go() -> None:
        clock = FakeClock()
        limiters = SimpleLimiters(100.0, burst_s=0.0, clock=clock, sleep=clock.sleep)
        limiters.on_throttle("attach", 2.0)
        await limiters.acquire("upload")
        assert clock.now < 0.1
        await limiters.acquire("attach")
        assert clock.now >= 2.0

    asyncio.run(go())


@pytest.mark.parametrize("retry_after", [float("inf"), float("nan"), -1.0, 0.0])
def test_a_retry_after_that_is_no_time_holds_nothing_back(retry_after: float) -> None:
    async def go() -> None:
        clock = FakeClock()
        limiters = SimpleLimiters(100.0, burst_s=0.0, clock=clock, sleep=clock.sleep)
        limiters.on_throttle("attach", retry_after)
        await limiters.acquire("attach")
        assert clock.now < 0.1

    asyncio.run(go())


def test_an_endpoint_limit_caps_that_endpoint_and_scales_with_a_share() -> None:
    async def go() -> None:
        clock = FakeClock()
        limiters = SimpleLimiters(100.0, endpoint_ceilings={"attach": 10.0}, burst_s=0.0, clock=clock,
                                  sleep=clock.sleep)
        assert limiters.rates()["attach"] == 10.0 and limiters.rates()["upload"] == 100.0
        limiters.set_ceiling(50.0)  # half the rate shared: half of attach's too
        assert limiters.ceiling == 50.0
        assert limiters.rates() == {"all": 50.0, "token": 50.0, "customer": 50.0, "upload": 50.0, "attach": 5.0}

    asyncio.run(go())


def test_an_unknown_endpoint_limit_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="no endpoint 'attachments'"):
        SimpleLimiters(100.0, endpoint_ceilings={"attachments": 10.0})  # type: ignore[dict-item]


def test_todays_controller_paces_unless_the_simple_one_is_chosen() -> None:
    assert chosen_controller({}) == "current"
    built = make_limiters(100.0, endpoint_ceilings=None, burst_s=0.05, small_ahead=True, environ={})
    assert isinstance(built, EndpointLimiters)
    chosen = make_limiters(100.0, endpoint_ceilings=None, burst_s=0.05, small_ahead=True,
                           environ={VARIABLE: "simple"})
    assert isinstance(chosen, SimpleLimiters)


def test_an_unknown_controller_is_refused_naming_the_variable_not_the_value() -> None:
    with pytest.raises(ValueError, match=VARIABLE) as refused:
        chosen_controller({VARIABLE: "secret-typo-xyz"})
    assert "secret-typo-xyz" not in str(refused.value)
