"""The limiters on a fake clock: spacing, small bursts, rate changes, which controller answers a 429, Retry-After per
endpoint, and the order small requests take their tokens in."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from connectors.rate_limiter import EndpointLimiters, SmoothLimiter
from tests.support.fake_clock import FakeClock


def _send_times(limiter: SmoothLimiter, clock: FakeClock, n: int) -> list[float]:
    async def go() -> list[float]:
        times = []
        for _ in range(n):
            await limiter.acquire()
            times.append(clock.now)
        return times

    return asyncio.run(go())


def test_requests_are_spaced_not_burst() -> None:
    clock = FakeClock()
    times = _send_times(SmoothLimiter(100.0, burst_s=0.05, clock=clock, sleep=clock.sleep), clock, 101)
    # an AsyncLimiter(100, 1) would let all of the first 100 go at t=0; this one spaces them 10 ms apart
    assert times[-1] >= 0.99
    assert max(b - a for a, b in itertools.pairwise(times)) <= 0.0101


def test_concurrent_waiters_still_get_the_rate_and_a_cut_applies_at_once() -> None:
    clock = FakeClock()
    limiter = SmoothLimiter(50.0, clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(clock.now)

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(50)))
        limiter.set_rate(5.0)  # a 429 cut the rate: the next requests go 200 ms apart
        await asyncio.gather(*(one() for _ in range(5)))

    asyncio.run(go())
    assert 0.9 <= times[49] <= 1.1
    assert times[-1] - times[49] >= 5 * 0.2 - 0.2 - 1e-9


def test_retry_after_holds_back_its_endpoint_only() -> None:
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, clock=clock, sleep=clock.sleep)

    async def go() -> tuple[float, float]:
        limiters.on_throttle("attach", 2.0)
        limiters.on_throttle("attach", 2.0)  # two in a row: over the noise
        await limiters.acquire("upload")
        upload_at = clock.now
        await limiters.acquire("attach")
        return upload_at, clock.now

    upload_at, attach_at = asyncio.run(go())
    assert upload_at < 0.1
    assert attach_at >= 2.0


def test_a_wall_of_429s_on_attach_cuts_attach_and_leaves_uploads_alone() -> None:
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, clock=clock, sleep=clock.sleep)
    for i in range(200):  # a second of traffic: four uploads to an attach, as a customer's documents go
        clock.now += 0.005
        limiters.on_success("attach" if i % 5 == 0 else "upload")
    for _ in range(30):  # then attach meets its own, tighter limit while uploads go on getting through
        clock.now += 0.005
        limiters.on_throttle("attach", None)
        limiters.on_success("upload")
    rates = limiters.rates()
    assert rates["attach"] < 100 and rates["upload"] == 100


def test_a_limit_on_the_whole_client_cuts_the_overall_rate_not_each_endpoint() -> None:
    clock = FakeClock()
    limiters = EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)
    for i in range(200):
        clock.now += 0.005
        limiters.on_success("attach" if i % 5 == 0 else "upload")
    for i in range(100):  # every endpoint meets 429s in proportion to its traffic
        clock.now += 0.002
        limiters.on_throttle("attach" if i % 5 == 0 else "upload", None)
    assert limiters.overall_control.cuts >= 1
    assert limiters.controllers["attach"].cuts == 0  # the attach share is no higher than the whole's: not its own
    assert limiters.controllers["upload"].cuts == 0


def test_429s_of_requests_let_go_before_a_cut_do_not_cut_again() -> None:
    """Requests let go at the old rate and still queued for a connection leave after the cut: their 429s are
    echoes of the overshoot it answered. Requests let go after it that meet 429s are a real overshoot."""
    clock = FakeClock()
    limiters = EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)
    gate = asyncio.Event()

    async def request() -> None:
        await limiters.acquire("upload")  # leave to send, then (as FinClient does) the answer in the same task
        await gate.wait()
        clock.now += 0.001
        limiters.on_throttle("upload", None)

    async def go() -> tuple[int, int]:
        early = [asyncio.create_task(request()) for _ in range(40)]
        await asyncio.sleep(0)
        while not all(t in limiters._let_go for t in early):  # every one of them let go at the old rate
            await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*early)  # a wall of 429s: the first two cut, the rest are their echoes
        after_echoes = limiters.overall_control.cuts
        late = [asyncio.create_task(request()) for _ in range(10)]
        await asyncio.gather(*late)
        return after_echoes, limiters.overall_control.cuts

    after_echoes, after_late = asyncio.run(go())
    assert after_echoes == 1
    assert after_late >= 2


def test_once_attach_has_found_a_limit_of_its_own_its_429s_leave_the_overall_rate_alone() -> None:
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, clock=clock, sleep=clock.sleep)
    for _ in range(100):  # a customer's GET and uploads come first
        clock.now += 0.01
        limiters.on_success("upload")
    for _ in range(10):  # then attach meets its own limit: a wall of 429s among the uploads, attach cuts
        clock.now += 0.005
        limiters.on_throttle("attach", None)
        limiters.on_success("upload")
    assert limiters.rates()["attach"] < 100
    for i in range(600):  # then: uploads get through, attach sees a 429 in ten (it probes near its limit)
        clock.now += 0.01
        if i % 6 == 0:
            limiters.on_throttle("attach", None) if i % 60 == 0 else limiters.on_success("attach")
        else:
            limiters.on_success("upload")
    rates = limiters.rates()
    assert rates["all"] == 100 and rates["upload"] == 100


def test_a_customer_look_up_sending_alone_leaves_its_429s_to_the_whole_clients_rate() -> None:
    """At a run's start only customer look-ups go: their 429s may be the client's limit as well as their own, and
    cut as their own, the look-ups (and the uploads waiting on them) crawled for seconds."""
    clock = FakeClock()
    limiters = EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)
    for i in range(60):
        clock.now += 0.002
        limiters.on_throttle("customer", None) if i % 2 else limiters.on_success("customer")
    assert limiters.overall_control.cuts >= 1 and limiters.controllers["customer"].cuts == 0


def test_an_endpoints_own_limit_caps_it_and_a_shard_runs_share_scales_it() -> None:
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, endpoint_ceilings={"attach": 10.0, "customer": 500.0},
                                clock=clock, sleep=clock.sleep)

    def ceilings() -> dict[str, float]:
        return {e: c.config.ceiling for e, c in limiters.controllers.items()}

    assert ceilings() == {"token": 100.0, "customer": 100.0, "upload": 100.0, "attach": 10.0}
    assert limiters.rates()["attach"] == 10.0
    limiters.set_ceiling(25.0)  # a quarter of the rate: a quarter of attach's limit too
    assert ceilings() == {"token": 25.0, "customer": 25.0, "upload": 25.0, "attach": 2.5}
    assert limiters.rates()["attach"] == 2.5
    limiters.set_ceiling(100.0)
    assert ceilings()["attach"] == 10.0 and limiters.rates()["attach"] == 2.5  # the slow start climbs back to it


def test_an_endpoint_told_its_own_limit_is_spaced_by_it() -> None:
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, endpoint_ceilings={"attach": 10.0}, clock=clock, sleep=clock.sleep)

    async def go() -> list[float]:
        times = []
        for _ in range(11):
            await limiters.acquire("attach")
            times.append(clock.now)
        return times

    times = asyncio.run(go())
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(times))


def test_an_unknown_endpoint_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="no endpoint 'attachment'"):
        EndpointLimiters(100.0, endpoint_ceilings={"attachment": 10.0})  # type: ignore[dict-item]


def test_small_requests_leave_at_their_own_pace_however_long_the_whole_client_held_them() -> None:
    """The whole client's token is taken first, then the endpoint's: taken the other way round, attaches paced 100 ms
    apart by their own limiter waited for the whole client's token behind the uploads, a different time each, and
    reached a gateway whose attach bucket holds one closer together than that."""
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, endpoint_ceilings={"attach": 10.0}, burst_s=0.0,
                                clock=clock, sleep=clock.sleep)
    limiters.overall.set_rate(2.0)

    async def go() -> list[float]:
        times: list[float] = []

        async def attach() -> None:
            await limiters.acquire("attach")
            times.append(clock.now)

        tasks = [asyncio.create_task(attach()) for _ in range(8)]
        while clock.now < 1.0:
            await asyncio.sleep(0)
        limiters.overall.set_rate(100.0)
        await asyncio.gather(*tasks)
        return times

    times = asyncio.run(go())
    assert len(times) == 8
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(sorted(times)))
