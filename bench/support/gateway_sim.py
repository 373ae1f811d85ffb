"""The gateway simulator: requests through ``EndpointLimiters.acquire`` (the real async path) in virtual time.

Worker tasks per endpoint wait for leave, send to a gateway (token buckets for the whole client and per endpoint,
optional random 429s, optional Retry-After), and hear the answer ``latency`` later. Time moves only when every task
is blocked: the driver then wakes the earliest sleeper.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.rate_limiter import EndpointLimiters
from sandbox.injector import TokenBucket


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(seconds, 0.0), next(self._seq), fut))
        await fut

    async def drive(self, until: float, each: Callable[[float], None] | None = None) -> None:
        loop: Any = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0)
            while loop._ready:  # every task that can run has run
                await asyncio.sleep(0)
            if not self._timers or self._timers[0][0] > until:
                return
            at = self._timers[0][0]
            self.now = max(self.now, at)
            if each is not None:
                each(self.now)
            while self._timers and self._timers[0][0] <= at:
                _, _, fut = heapq.heappop(self._timers)
                if not fut.done():
                    fut.set_result(None)


@dataclass(frozen=True)
class Bucket:
    """A gateway's token bucket: ``rate`` tokens/s holding ``burst``; the sandbox's own (``sandbox.injector``) in
    virtual time enforces it."""

    rate: float
    burst: int


@dataclass
class Result:
    sends: list[tuple[float, str, bool]] = field(default_factory=list)  # (time, endpoint, throttled)
    rates: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def count(self, start: float, end: float, endpoint: str | None = None, ok: bool | None = None) -> int:
        return sum(1 for t, e, thr in self.sends if start <= t < end and (endpoint is None or e == endpoint)
                   and (ok is None or ok != thr))

    def share_429(self, start: float, end: float, endpoint: str | None = None) -> float:
        n = self.count(start, end, endpoint)
        return self.count(start, end, endpoint, ok=False) / n if n else 0.0

    def max_window(self, width: float, start: float = 0.0, endpoint: str | None = None) -> int:
        times = [t for t, e, _ in self.sends if t >= start and (endpoint is None or e == endpoint)]
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] <= t - width:
                j += 1
            best = max(best, i - j + 1)
        return best


def simulate(limiters_of: Callable[[VirtualClock], EndpointLimiters], seconds: float, *,
             workers: Mapping[str, int], demand: Mapping[str, float] | None = None,
             gateway: Bucket | None = None, endpoint_buckets: Mapping[str, Bucket] | None = None,
             noise: float = 0.0, noise_on: Mapping[str, float] | None = None, retry_after: float | None = None,
             latency: float = 0.02, jitter: float = 0.0, seed: int = 1,
             active: Mapping[str, tuple[float, float]] | None = None,
             events: Mapping[float, Callable[[EndpointLimiters], None]] | None = None,
             sample_s: float = 0.1, runs: int = 1, wall: tuple[float, float] | None = None,
             on_the_way: float = 0.0) -> Result:
    """``workers``: tasks per endpoint, each sending as fast as allowed (``demand``: at most that many per s per
    endpoint, spread over its workers); ``active``: (from, until) per endpoint; ``events``: calls at given times
    (on the first run's limiters); ``runs``: processes sharing the gateway, each with its own limiters and workers;
    ``wall``: (from, until) the gateway answers every request 429."""
    rng = random.Random(seed)
    clock = VirtualClock()
    result = Result()
    whole = TokenBucket(gateway.rate, gateway.burst, clock) if gateway is not None else None
    buckets = {e: TokenBucket(b.rate, b.burst, clock) for e, b in (endpoint_buckets or {}).items()}
    pending_events = sorted((events or {}).items())

    async def worker(limiters: EndpointLimiters, endpoint: str, n: int) -> None:
        start, until = (active or {}).get(endpoint, (0.0, seconds))
        if start > 0:
            await clock.sleep(start)
        gap = n / demand[endpoint] if demand and endpoint in demand else 0.0
        while clock.now < min(until, seconds):
            began = clock.now
            await limiters.acquire(endpoint)
            if on_the_way:  # the way to the gateway: up to ``on_the_way`` seconds, a different time for each request
                await clock.sleep(on_the_way * rng.random())
            now = clock.now
            if now >= seconds:
                return
            throttled = wall is not None and wall[0] <= now < wall[1]
            if not throttled and whole is not None and whole.take() is not None:
                throttled = True
            if not throttled and endpoint in buckets and buckets[endpoint].take() is not None:
                throttled = True
            p = (noise_on or {}).get(endpoint, noise)
            if not throttled and p and rng.random() < p:
                throttled = True
            result.sends.append((now, endpoint, throttled))
            await clock.sleep(latency * (1.0 + jitter * (2.0 * rng.random() - 1.0)))
            if throttled:
                limiters.on_throttle(endpoint, retry_after)
            else:
                limiters.on_success(endpoint)
            if gap:
                rest = gap - (clock.now - began)
                if rest > 0:
                    await clock.sleep(rest)

    async def main() -> None:
        every = [limiters_of(clock) for _ in range(runs)]
        limiters = every[0]
        next_sample = [0.0]

        def each(now: float) -> None:
            while pending_events and pending_events[0][0] <= now:
                pending_events.pop(0)[1](limiters)
            if now >= next_sample[0]:
                result.rates.append((now, limiters.rates()))
                next_sample[0] = now + sample_s

        tasks = [asyncio.create_task(worker(one, e, n)) for one in every for e, n in workers.items() for _ in range(n)]
        for at in [t for t, _ in pending_events]:
            tasks.append(asyncio.create_task(clock.sleep(at)))
        await clock.drive(seconds + 1.0, each)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    return result


#: The longest a request takes to reach the gateway in ``run_case`` (each a different time, up to this): a bucket of
#: one refuses half the requests paced exactly at its limit, as it did end to end on a loopback sandbox.
ON_THE_WAY_S = 0.005


@dataclass(frozen=True)
class Outcome:
    share_of_r: float  # what got through per second (attaches in the attach case), over R (R/10)
    share_429: float  # of all requests


def run_case(case: str, rate: float, *, told: bool, seed: int, seconds: float = 30.0,
             on_the_way: float = ON_THE_WAY_S) -> Outcome:
    """A case of the end-to-end bench (bench/bench_e2e.py) in virtual time: the real limiters, 16 upload, 4 attach and
    4 look-up workers, look-ups at 0.15 R, answers 20 ms +-30% later, against ``case``: ``harsh`` (a bucket of R/s
    holding R/10), ``attach`` (and an attach-only bucket of R/10 holding one) or ``noise`` (harsh, and 10% of the
    requests 429 at random). ``told``: the limits are the ceilings; else the ceiling is 10 R. From the fifth second."""
    ceiling = rate if told else 10 * rate
    own = {"attach": rate / 10} if case == "attach" and told else None
    result = simulate(lambda c: EndpointLimiters(ceiling, endpoint_ceilings=own, clock=c, sleep=c.sleep), seconds,
                      workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": rate * 0.15},
                      gateway=Bucket(rate, max(1, int(rate // 10))), jitter=0.3, seed=seed,
                      endpoint_buckets={"attach": Bucket(rate / 10, 1)} if case == "attach" else None,
                      noise=0.1 if case == "noise" else 0.0, on_the_way=on_the_way)
    endpoint, target = ("attach", rate / 10) if case == "attach" else (None, rate)
    got = result.count(5, seconds, endpoint, ok=True) / (seconds - 5)
    return Outcome(got / target, result.share_429(5, seconds))
