"""Enforces the simple controller's rates (``transforms.simple_pacing``): token buckets per endpoint and for the
whole client, behind the interface of ``connectors.rate_limiter.EndpointLimiters``.

A request takes its endpoint's token, then the whole client's. Every answer is heard by its endpoint's controller
and by the whole client's: a limit on one endpoint cuts that endpoint and the whole client alike, as botocore's one
limiter per client would. A ``Retry-After`` holds the endpoint back until then (a floor, never a rate).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from connectors.rate_limiter import ENDPOINTS, Endpoint
from transforms.pacing_signal import TOO_MANY_REQUESTS, Signal, classify
from transforms.simple_pacing import SimpleController, SimplePacing

#: The longest a waiter sleeps before it looks at the rate again, so a raised rate reaches a request already waiting.
MAX_NAP_S = 0.25


class TokenBucket:
    """``rate`` tokens/s holding at most ``burst_s`` seconds' worth (at least one); waiters go first come, first
    served, and none before ``not_before``."""

    def __init__(self, rate: float, *, burst_s: float, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.rate = rate
        self.not_before = 0.0
        self._burst_s = burst_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0  # one request's worth at the start, not a burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def set_rate(self, rate: float) -> None:
        self._refill()
        self.rate = rate

    def _refill(self) -> None:
        now = self._clock()
        capacity = max(1.0, self.rate * self._burst_s)
        self._tokens = min(capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> float:
        """Wait for one token; returns the seconds waited."""
        started = self._clock()
        async with self._lock:
            while True:
                self._refill()
                wait = max(self.not_before - self._stamp, (1.0 - self._tokens) / self.rate)
                if wait <= 1e-9:  # float dust: a token refilled to 0.9999999 is a token
                    self._tokens -= 1.0
                    return self._clock() - started
                await self._sleep(min(wait, MAX_NAP_S))


class SimpleLimiters:
    """One controller and bucket per endpoint, under one more for the whole client."""

    def __init__(self, ceiling: float, *, endpoint_ceilings: Mapping[Endpoint, float] | None = None,
                 burst_s: float = 0.05, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clock = clock
        self._configured = ceiling
        self._endpoint_ceilings: dict[str, float] = {e: c for e, c in (endpoint_ceilings or {}).items()}
        unknown = sorted(set(self._endpoint_ceilings) - set(ENDPOINTS))
        if unknown:
            raise ValueError(f"endpoint ceilings: no endpoint {unknown[0]!r} (endpoints: {', '.join(ENDPOINTS)})")
        self.overall_control = SimpleController(SimplePacing(ceiling=ceiling))
        self.controllers = {e: SimpleController(SimplePacing(ceiling=self._endpoint_ceiling(e, ceiling)))
                            for e in ENDPOINTS}
        self.overall = TokenBucket(ceiling, burst_s=burst_s, clock=clock, sleep=sleep)
        self.limiters = {e: TokenBucket(c.rate, burst_s=burst_s, clock=clock, sleep=sleep)
                         for e, c in self.controllers.items()}

    def _endpoint_ceiling(self, endpoint: str, ceiling: float) -> float:
        """An endpoint's own configured limit scaled by the share ``ceiling`` is of the configured one."""
        own = self._endpoint_ceilings.get(endpoint)
        return ceiling if own is None else min(ceiling, own * ceiling / self._configured)

    async def acquire(self, endpoint: str) -> float:
        """Wait until a request to ``endpoint`` may go; returns the seconds waited."""
        return await self.limiters[endpoint].acquire() + await self.overall.acquire()

    def on_answer(self, endpoint: str, status: int | None, retry_after: float | None = None) -> None:
        """An answer of ``endpoint`` (``status`` None: none came); ``retry_after`` seconds hold the endpoint back."""
        now = self._clock()
        signal = classify(status)
        self.overall.set_rate(self.overall_control.hear(now, signal))
        self.limiters[endpoint].set_rate(self.controllers[endpoint].hear(now, signal))
        if signal is Signal.THROTTLE and retry_after is not None and 0 < retry_after < math.inf:
            bucket = self.limiters[endpoint]
            bucket.not_before = max(bucket.not_before, now + retry_after)

    def on_success(self, endpoint: str) -> None:
        """An answer that was not a 429."""
        self.on_answer(endpoint, HTTPStatus.OK)

    def on_throttle(self, endpoint: str, retry_after: float | None, *, sent_at: float | None = None) -> None:
        """A 429 (``sent_at`` is not needed: every 429 is heard alike)."""
        self.on_answer(endpoint, TOO_MANY_REQUESTS, retry_after)

    def set_ceiling(self, ceiling: float) -> None:
        """A new configured limit for the whole client and every endpoint (a fanned-out shard run's share)."""
        self.overall.set_rate(self.overall_control.set_ceiling(ceiling))
        for endpoint, controller in self.controllers.items():
            self.limiters[endpoint].set_rate(controller.set_ceiling(self._endpoint_ceiling(endpoint, ceiling)))

    @property
    def ceiling(self) -> float:
        """The configured limit now (requests/s)."""
        return self.overall_control.config.ceiling

    def rates(self) -> dict[str, float]:
        """The current rates (requests/s): ``all`` together, then each endpoint's."""
        return {"all": round(self.overall.rate, 1), **{e: round(b.rate, 1) for e, b in self.limiters.items()}}
