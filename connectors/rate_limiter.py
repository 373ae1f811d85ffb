"""Enforces the rates of ``transforms.rate_control``: a smooth token bucket per API endpoint and one for the client.

Hand-written: ``aiolimiter.AsyncLimiter(R, 1.0)`` lets R requests through at once (a gateway holding R/10 answers
most with 429), ``pyrate-limiter`` and ``limits`` count over fixed windows and cannot move their rate at run time.
Waiters queue on one lock and the head sleeps until its token is due: a cut applies to the very next request.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, get_args

from transforms.noise_floor import RECENT_AT_LEAST
from transforms.pacing_signal import TOO_MANY_REQUESTS, Signal
from transforms.rate_control import RateControl, RateController

Endpoint = Literal["token", "customer", "upload", "attach"]
ENDPOINTS: tuple[str, ...] = get_args(Endpoint)
#: The longest a waiter sleeps before it looks at the rate again, so a raised rate reaches a request already waiting.
MAX_NAP_S = 0.25


class SmoothLimiter:
    """A token bucket of ``rate`` tokens/s holding at most ``burst_s`` seconds' worth (at least one token); nothing
    leaves before ``not_before`` (a Retry-After)."""

    def __init__(self, rate: float, *, burst_s: float = 0.05, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.rate = rate
        self.not_before = 0.0
        self._burst_s = burst_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0  # one request's worth at the start, not a burst
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self._ahead_lock = asyncio.Lock()
        self._ahead_waiting = 0  # waiters served before the others

    def set_rate(self, rate: float) -> None:
        self._refill()
        self.rate = rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(max(1.0, self.rate * self._burst_s), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, *, then: SmoothLimiter | None = None, ahead: bool = False) -> float:
        """Wait for one token; returns the seconds waited. With ``then``, once this bucket has a token, wait for one of
        ``then``'s too, and take this one last: requests leave at this bucket's spacing however long ``then`` held
        them, and hold no token of ``then``'s while they wait for their own. ``ahead``: served before the waiters
        without it, never before a token is there."""
        started = self._clock()
        self._ahead_waiting += ahead
        try:
            async with self._ahead_lock if ahead else self._lock:
                await self._ready(ahead)
                if then is not None:
                    await then.acquire(ahead=ahead)
                    await self._ready(ahead)  # a Retry-After may have come meanwhile
                self._tokens -= 1.0
        finally:
            self._ahead_waiting -= ahead
        return self._clock() - started

    async def _ready(self, ahead: bool) -> None:
        """Until the bucket holds a token (two behind a waiter served ahead) and no Retry-After holds it back."""
        while True:
            self._refill()
            need = 2.0 if self._ahead_waiting and not ahead else 1.0
            wait = max(self.not_before - self._stamp, (need - self._tokens) / self.rate)
            if wait <= 1e-9:  # float dust: a token refilled to 0.9999999 is a token
                return
            await self._sleep(min(wait, MAX_NAP_S))  # the rate or a Retry-After may change meanwhile


class EndpointLimiters:
    """One controller and limiter per endpoint, under one more for the whole client; every answer is heard by both.

    A request takes the whole client's token once its endpoint's is there, and its endpoint's last: attaches waiting
    behind uploads for the whole client's token waited a different time each, and two paced for a bucket of one
    reached it too close together. Customer look-ups and attaches (few, small) are served the whole client's token
    before uploads: behind them, each attach's wait was time its own limit went unused.
    """

    def __init__(self, ceiling: float, *, endpoint_ceilings: Mapping[Endpoint, float] | None = None,
                 burst_s: float = 0.05, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clock = clock
        self._configured = ceiling
        self._endpoint_ceilings: dict[str, float] = {e: c for e, c in (endpoint_ceilings or {}).items()}
        unknown = sorted(set(self._endpoint_ceilings) - set(ENDPOINTS))
        if unknown:
            raise ValueError(f"endpoint ceilings: no endpoint {unknown[0]!r} (endpoints: {', '.join(ENDPOINTS)})")
        # The whole client holds no limit it found and cuts from what gets through now: an endpoint alone at first
        # teaches it that endpoint's limit, and held there, uploads joining later stayed at it for seconds.
        self.overall_control = _controller(ceiling, hold_s=0.0, most_keep=0.0)
        self.controllers = {e: _controller(self._endpoint_ceiling(e, ceiling)) for e in ENDPOINTS}
        self.overall = SmoothLimiter(self.overall_control.rate, burst_s=burst_s, clock=clock, sleep=sleep)
        self.limiters = {e: SmoothLimiter(c.rate, burst_s=burst_s, clock=clock, sleep=sleep)
                         for e, c in self.controllers.items()}
        # When each task (a request's loop in FinClient) was let go: a 429 of a request let go before a cut is an echo.
        self._let_go: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = weakref.WeakKeyDictionary()

    def _endpoint_ceiling(self, endpoint: str, ceiling: float) -> float:
        """An endpoint's own limit, scaled by the share ``ceiling`` is of the configured one."""
        own = self._endpoint_ceilings.get(endpoint)
        return ceiling if own is None else min(ceiling, own * ceiling / self._configured)

    async def acquire(self, endpoint: str) -> float:
        """Wait until a request to ``endpoint`` may go; returns the seconds waited."""
        waited = await self.limiters[endpoint].acquire(then=self.overall, ahead=endpoint != "upload")
        task = _current_task()
        if task is not None:
            self._let_go[task] = self._clock()
        return waited

    def on_answer(self, endpoint: str, status: int, retry_after: float | None = None, *,
                  sent_at: float | None = None) -> None:
        """An answer of ``endpoint``; ``sent_at`` (this clock) when its request was let go, by default when the
        calling task last was; a 429 over the noise holds that endpoint (only) back ``retry_after`` seconds."""
        now = self._clock()
        if sent_at is None:
            task = _current_task()
            sent_at = self._let_go.get(task) if task is not None else None
        own, limiter = self.controllers[endpoint], self.limiters[endpoint]
        # An endpoint's 429s at the other endpoints' share are the whole client's limit (or the gateway's noise): the
        # endpoint does not cut for them. Over that share they are its own limit's, and the whole client does not.
        # The others' share, not the whole client's: an endpoint alone at first taught the whole client its own limit,
        # and its 429s, at the whole client's share of a client paced by them, kept it there once the others came.
        # While the others answer less often than it, the whole client's: an endpoint (nearly) alone may as well meet
        # the whole client's limit, and the others' share of a few answers is too rough (random 429s then cut uploads).
        (answers, hits), (own_answers, own_hits) = self.overall_control.recent, own.recent
        others = answers - own_answers
        share = (hits - own_hits) / others if others >= max(own_answers, RECENT_AT_LEAST) else hits / max(answers, 1)
        heard = own.hear(now, status, sent_at=sent_at, noise=share)
        limiter.set_rate(own.rate)
        whole = self.overall_control.hear(now, status, sent_at=sent_at,
                                          noise=1.0 if heard is Signal.THROTTLE else None)
        self.overall.set_rate(self.overall_control.rate)
        # Only a 429 over the noise holds the endpoint back: a lone one (a probe's past the limit, or the gateway's
        # noise) holds back its own request only, which waits out the Retry-After itself. A gateway answering
        # ``Retry-After: 1`` for a wait of milliseconds otherwise held a run not told its limit to a third of it.
        limited = Signal.THROTTLE in (heard, whole)
        if limited and retry_after is not None and 0 < retry_after < math.inf:
            limiter.not_before = max(limiter.not_before, now + retry_after)

    def on_success(self, endpoint: str) -> None:
        self.on_answer(endpoint, 200)

    def on_throttle(self, endpoint: str, retry_after: float | None, *, sent_at: float | None = None) -> None:
        self.on_answer(endpoint, TOO_MANY_REQUESTS, retry_after, sent_at=sent_at)

    def set_ceiling(self, ceiling: float) -> None:
        """A new configured limit for the whole client and every endpoint (a fanned-out shard run's share)."""
        self.overall.set_rate(self.overall_control.set_ceiling(ceiling))
        for endpoint, controller in self.controllers.items():
            self.limiters[endpoint].set_rate(controller.set_ceiling(self._endpoint_ceiling(endpoint, ceiling)))

    @property
    def ceiling(self) -> float:
        return self.overall_control.config.ceiling

    def rates(self) -> dict[str, float]:
        """The current rates (requests/s): ``all`` together, then each endpoint's."""
        return {"all": round(self.overall.rate, 1), **{e: round(b.rate, 1) for e, b in self.limiters.items()}}


def _controller(ceiling: float, *, hold_s: float = RateControl.hold_s,
                most_keep: float = RateControl.most_keep) -> RateController:  # a limit under the floor is the floor
    return RateController(RateControl(ceiling=ceiling, floor=min(RateControl.floor, ceiling), hold_s=hold_s,
                                      most_keep=most_keep))


def _current_task() -> asyncio.Task[Any] | None:  # None outside an event loop
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
