"""Small requests (customer look-ups, attaches) take the whole client's token ahead of the queued uploads without
starving them, passing the rate, or hanging on a cancelled upload (fake clock)."""

from __future__ import annotations

import asyncio

from connectors.rate_limiter import SmoothLimiter
from tests.support.fake_clock import FakeClock


def test_small_requests_at_the_whole_rate_do_not_starve_a_queued_upload() -> None:
    # The whole client cut to 10/s (a global limit) while customer look-ups, paced by their own limiter at the
    # ceiling, keep asking: each took the token at 0 (going to -1) before the upload's bucket reached 1, and the
    # upload waited until the look-ups stopped (20 s here; forever with look-ups enough).
    clock = FakeClock()
    limiter = SmoothLimiter(10.0, clock=clock, sleep=clock.sleep)
    upload_at: list[float] = []

    async def small_requests() -> None:
        while clock.now < 20.0 and not upload_at:
            await limiter.acquire(ahead=True)

    async def upload() -> None:
        await limiter.acquire()
        upload_at.append(clock.now)

    async def go() -> None:
        smalls = asyncio.create_task(small_requests())
        await asyncio.sleep(0)
        await asyncio.gather(upload(), smalls)

    asyncio.run(go())
    assert upload_at and upload_at[0] <= 1.0


def test_many_small_takers_with_a_queued_upload_keep_the_rate() -> None:
    # 30 ahead takers and 5 queued uploads at 20/s: no more than rate x span + capacity + 1 over the run, and the
    # uploads all get through while the small ones keep asking.
    clock = FakeClock()
    limiter = SmoothLimiter(20.0, clock=clock, sleep=clock.sleep)
    times: list[float] = []
    uploads: list[float] = []

    async def small() -> None:
        while len(uploads) < 5 and clock.now < 30.0:
            await limiter.acquire(ahead=True)
            times.append(clock.now)

    async def upload() -> None:
        await limiter.acquire()
        times.append(clock.now)
        uploads.append(clock.now)

    async def go() -> None:
        await asyncio.gather(*(small() for _ in range(30)), *(upload() for _ in range(5)))

    asyncio.run(go())
    assert len(uploads) == 5
    span = max(times) - min(times)
    assert len(times) <= 20.0 * span + 1.0 + 1 + 1e-6


def test_a_retry_after_holds_ahead_takers_and_the_queue_alike() -> None:
    clock = FakeClock()
    limiter = SmoothLimiter(50.0, clock=clock, sleep=clock.sleep)
    limiter.not_before = 2.0
    times: list[float] = []

    async def one(ahead: bool) -> None:
        await limiter.acquire(ahead=ahead)
        times.append(clock.now)

    async def go() -> None:
        await asyncio.gather(*(one(i % 2 == 0) for i in range(10)))

    asyncio.run(go())
    assert min(times) >= 2.0


def test_an_ahead_taker_owed_to_a_cancelled_upload_does_not_hang() -> None:
    # The fix makes an ahead taker wait for the queue's head after an ahead take; the head giving up (its request
    # cancelled) must let it go.
    clock = FakeClock()
    limiter = SmoothLimiter(1.0, clock=clock, sleep=clock.sleep)

    async def go() -> float:
        await limiter.acquire(ahead=True)  # the first token, ahead: the next ahead one is owed to a queued upload
        upload = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        small = asyncio.create_task(limiter.acquire(ahead=True))
        await asyncio.sleep(0)
        upload.cancel()
        return await asyncio.wait_for(small, timeout=5.0)

    assert asyncio.run(go()) <= 3.0
