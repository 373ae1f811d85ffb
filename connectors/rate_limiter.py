"""Client-side rate limits: a smooth token bucket per API endpoint, steered by a closed-loop controller.

Why hand-written: ``aiolimiter.AsyncLimiter(R, 1.0)`` lets R requests through at once, which a gateway whose
bucket holds R/10 answers mostly with 429; ``AsyncLimiter(1, 1/R)`` spaces them but its rate cannot change at
run time. ``pyrate-limiter`` and ``limits`` count requests over fixed windows (bursts again at each window
edge) and have no rate to adjust. What is needed is a token bucket holding a small fraction of a second's
worth, whose rate the controller (``transforms.rate_control``) moves on every response: ~60 lines here.

Waiters queue on one ``asyncio.Lock`` (first come, first served); the one holding it sleeps until its token is
due, so a rate cut applies to the very next request rather than to requests already booked ahead.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Literal, get_args

from transforms.rate_control import RateControl, RateController

Endpoint = Literal["token", "customer", "upload", "attach"]
ENDPOINTS: tuple[str, ...] = get_args(Endpoint)
#: The longest a waiter sleeps before it looks at the rate again.
MAX_NAP_S = 0.25
#: An endpoint whose answers are this share of the whole client's (or more) sends alone (``_held_by_own_limit``).
ALONE_SHARE = 0.8
#: How often a request that may not go ahead again looks whether the queue's head took its token.
OWED_NAP_S = 0.001


class SmoothLimiter:
    """A token bucket of ``rate`` tokens/s holding at most ``burst_s`` seconds' worth (at least one token)."""

    def __init__(self, rate: float, *, burst_s: float = 0.05, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._rate = rate
        self._burst_s = burst_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0  # start with one request's worth, not a burst
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.not_before = 0.0  # a Retry-After: nothing leaves before this time
        self._ahead_owed = False  # the last token went ahead of the queue

    @property
    def rate(self) -> float:
        """Tokens per second now."""
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on (tokens gathered so far stay)."""
        self._refill()
        self._rate = rate

    def _capacity(self) -> float:
        return max(1.0, self._rate * self._burst_s)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity(), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def acquire(self, *, ahead: bool = False) -> float:
        """Wait for one token; returns the seconds waited.

        ``ahead``: skip the queue and take the token now, one token into debt at most, which the queued waiters
        then wait out. Over any span the bucket lets through at most one request more than without it.
        """
        started = self._clock()
        if ahead:
            await self._take(ahead=True)
        else:
            async with self._lock:
                await self._take(ahead=False)
        return self._clock() - started

    async def _take(self, *, ahead: bool) -> None:
        """Take a token once the bucket holds one (``ahead``: holds none owed) after this one's due time."""
        while True:
            self._refill()
            # One ahead take per token of the queue's head: after one, the next waits until the head (waiting on
            # the lock) took its own. Small requests asking at the whole client's rate otherwise took every token
            # at 0, before the bucket reached the 1 a queued upload needs, and the upload waited for as long as
            # they kept asking.
            owed = ahead and self._ahead_owed and self._lock.locked()
            need = 0.0 if ahead and not owed else 1.0
            wait = max(self.not_before - self._stamp, (need - self._tokens) / self._rate)
            if owed:
                wait = max(wait, OWED_NAP_S)
            if wait <= 1e-9:  # float dust: a token refilled to 0.9999999 is a token
                self._tokens -= 1.0
                self._ahead_owed = ahead
                return
            # Re-checked after the sleep: the rate or a Retry-After may have changed meanwhile. Naps of at most
            # MAX_NAP_S, so a raised rate (a shard run's larger share) reaches a request already waiting.
            await self._sleep(min(wait, MAX_NAP_S))


class EndpointLimiters:
    """One smooth limiter and one controller per endpoint, under one more for all endpoints together.

    Gateways limit the whole client and often one endpoint more tightly. The overall controller hears every
    response and finds the whole client's limit; an endpoint's controller cuts only when that endpoint's 429
    share is well above the overall one (its own, tighter limit). So a tight attach limit cuts attach only,
    and a global limit is not answered by every endpoint cutting at once (which starved the small ones, as
    several TCP flows through one bottleneck do). ``ceiling`` (the configured limit) caps every rate;
    ``endpoint_ceilings`` caps single endpoints lower (a limit the API documents for one endpoint).
    """

    def __init__(self, ceiling: float, *, endpoint_ceilings: Mapping[Endpoint, float] | None = None,
                 burst_s: float = 0.05, small_ahead: bool = True, start_share: float = RateControl.start_share,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clock = clock
        # Off under a shared rate: the shares set aside one request per run (``rate_share.share_each``), and a
        # token of debt in every run would let a second reach the total rate plus one request per run.
        self._small_ahead = small_ahead
        now = clock()
        # a configured limit below the controller's floor (0.5/s) is the floor: the run goes at it, never faster
        control = RateControl(ceiling=ceiling, floor=min(RateControl.floor, ceiling), start_share=start_share)
        self.overall_control = RateController(control, now=now)
        self._configured = ceiling
        self._endpoint_ceilings: dict[str, float] = {e: c for e, c in (endpoint_ceilings or {}).items()}
        unknown = sorted(set(self._endpoint_ceilings) - set(ENDPOINTS))
        if unknown:
            raise ValueError(f"endpoint ceilings: no endpoint {unknown[0]!r} (endpoints: {', '.join(ENDPOINTS)})")
        # Only the whole client starts slowly: it paces every endpoint. Each endpoint starting slowly on its own
        # held the uploads (which begin after the customer look-ups) at an eighth of the rate for a second more.
        own = replace(control, start_share=1.0)
        self.controllers = {e: RateController(self._capped(own, self._endpoint_ceiling(e, ceiling)), now=now)
                            for e in ENDPOINTS}
        # at the controllers' starting rates
        self.overall = SmoothLimiter(self.overall_control.rate, burst_s=burst_s, clock=clock, sleep=sleep)
        self.limiters = {e: SmoothLimiter(self.controllers[e].rate, burst_s=burst_s, clock=clock, sleep=sleep)
                         for e in ENDPOINTS}
        # When each task (one request's loop: FinClient sends and handles its answer in the task that waited
        # here) last got leave to send: a 429 of a request let go before a cut is an echo of the overshoot it
        # answered. The time leave was given, not the time the request left: requests let go at the old rate
        # and still queued for a connection leave after the cut, and their 429s must not cut again.
        self._let_go: weakref.WeakKeyDictionary[asyncio.Task[Any], float] = weakref.WeakKeyDictionary()

    async def acquire(self, endpoint: str) -> float:
        """Wait until a request to ``endpoint`` may go; returns the seconds waited."""
        if endpoint == "upload" or not self._small_ahead:
            # The whole client's token last, when the request leaves: under a shared rate (no going ahead), taken
            # first it would let a request wait for its own token after it, and a second could pass the shared rate.
            return await self._paced(self.limiters[endpoint], self.overall, ahead=False)
        # The small requests (a customer look-up, an attach) are few and paced by their own limiter: queued behind
        # the uploads for the whole client's token, they waited up to 0.26 s, a different time each, and two
        # attaches paced 100 ms apart reached a gateway whose attach bucket holds one closer than that (a 429). So
        # they skip that queue, and take the whole client's token first: their own limiter then lets them go at its
        # pace. Taken second, the whole client's slow start (seconds 0-2 of a run) held attaches up to a second
        # after their own token and let them go in bunches: a bucket of one answered 429 and attach was cut to 6/s.
        return await self._paced(self.overall, self.limiters[endpoint], ahead=self._small_ahead)

    async def _paced(self, first: SmoothLimiter, last: SmoothLimiter, *, ahead: bool) -> float:
        """A token from ``first`` (``ahead``: skipping its queue), then from ``last``: the time leave is given."""
        waited = await first.acquire(ahead=ahead)
        waited += await last.acquire()
        task = _current_task()
        if task is not None:
            self._let_go[task] = self._clock()
        return waited

    def on_success(self, endpoint: str) -> None:
        """A response that was not a 429: the endpoint's rate may climb."""
        now = self._clock()
        self.overall.set_rate(self.overall_control.on_success(now))
        self.limiters[endpoint].set_rate(self.controllers[endpoint].on_success(now))

    def on_throttle(self, endpoint: str, retry_after: float | None, *, sent_at: float | None = None) -> None:
        """A 429: the endpoint's rate may drop, and a ``Retry-After`` holds that endpoint (only) back.

        ``sent_at`` (this limiter's clock) is when the refused request was let go: one let go before a cut is its
        echo. By default, when the calling task last left ``acquire``.
        """
        controller = self.controllers[endpoint]
        limiter = self.limiters[endpoint]
        now = self._clock()
        if sent_at is None:
            task = _current_task()
            sent_at = self._let_go.get(task) if task is not None else None
        baseline = self._client_share(now)
        alone = self._held_by_own_limit(endpoint, now)
        if not (alone or self._own_limit(endpoint, now, baseline)):
            # An endpoint with a limit of its own explains its 429s itself: the overall controller hearing them would
            # cut every endpoint for attach's limit (uploads starve, and with them the attaches waiting on uploads: 63%
            # of an attach-only limit in the bench). Its own limit when either
            # - its 429 share is well above the whole client's, from its first 429 (heard until it has cut for them,
            #   attach's 429s teach the overall controller 6-13% noise, and a global limit then runs at 18% 429s).
            #   Only while its share is well above: under a limit on the whole client every endpoint's share is
            #   alike, and an upload controller that has cut once for it (so unheard by the overall one) would never
            #   cut again: nobody answers the limit, and the client sends 1.8 times it (10% random 429s, 45% in all);
            # - or it has cut for it and is held far below the whole client (``alone``). Then it answers its 429s
            #   alone, with no baseline: at a run's end attaches go alone, their share is the client's, and the
            #   overall controller would halve its rate from far above what is sent at each of their 429s
            #   (127 -> 54 -> 27 -> 13 -> 7/s) until it held them under their own limit. Only when it sends (nearly)
            #   alone: customer look-ups at 15/s are always under half the whole client's rate, and after one cut
            #   every 429 of a global limit would be theirs alone against no baseline: cut to 5/s.
            self.overall.set_rate(self.overall_control.on_throttle(now, sent_at=sent_at))
        baseline = 0.0 if alone else baseline
        # Random 429s are the gateway's and show in the whole client's share too: an endpoint's noise is at most the
        # whole client's. Uncapped, attach at a bucket of one with jitter learns its own limit's touches as ~20% noise
        # and sends up to twice its limit with half refused (attach's 429 share up to 50%; capped, 18%).
        limiter.set_rate(controller.on_throttle(now, retry_after, baseline=baseline, sent_at=sent_at,
                                                noise_at_most=self.overall_control.noise()))
        limiter.not_before = max(limiter.not_before, controller.paused_until)

    def _held_by_own_limit(self, endpoint: str, now: float) -> bool:
        """Whether the endpoint has cut for a limit of its own, is held far below the whole client by it, and sends
        (nearly) alone: its share of 429s is then the whole client's whatever limit they answer."""
        controller = self.controllers[endpoint]
        if not (controller.cuts > 0 and self.limiters[endpoint].rate < self.overall.rate / 2):
            return False
        n, _ = controller.recent_counts(now)
        total, _ = self.overall_control.recent_counts(now)
        return n >= ALONE_SHARE * total

    def _own_limit(self, endpoint: str, now: float, baseline: float) -> bool:
        """Whether the endpoint's recent 429 share is well above ``baseline`` (what a whole-client limit explains)."""
        n, hits = self.controllers[endpoint].recent_counts(now)
        return n > 0 and hits / n > 2 * baseline + self.overall_control.config.margin

    def _client_share(self, now: float) -> float:
        """The 429 share a limit on the whole client explains: the whole client's recent share.

        Not the other endpoints' share alone (it leaves out this endpoint's own 429s): with 10% random 429s on every
        endpoint that lets endpoints cut for noise, and runs fall from ~90% to 61-84% of their rate (the bench's
        noise case: 71% -> 64%), with no gain for an attach limit once halved cuts teach no noise.
        """
        n, hits = self.overall_control.recent_counts(now)
        return hits / n if n else 0.0

    @staticmethod
    def _capped(control: RateControl, ceiling: float) -> RateControl:
        return replace(control, ceiling=ceiling, floor=min(control.floor, ceiling))

    def _endpoint_ceiling(self, endpoint: str, ceiling: float) -> float:
        """An endpoint's ceiling when the whole client's is ``ceiling``: its own configured limit scaled by the
        same share (a shard run given a quarter of the rate gets a quarter of attach's too), never above it."""
        own = self._endpoint_ceilings.get(endpoint)
        return ceiling if own is None else min(ceiling, own * ceiling / self._configured)

    def set_ceiling(self, ceiling: float) -> None:
        """A new configured limit for every endpoint and the whole client (a fanned-out shard run's share)."""
        self.overall.set_rate(self.overall_control.set_ceiling(ceiling, min(RateControl.floor, ceiling)))
        for endpoint, controller in self.controllers.items():
            own = self._endpoint_ceiling(endpoint, ceiling)
            self.limiters[endpoint].set_rate(controller.set_ceiling(own, min(RateControl.floor, own)))

    @property
    def ceiling(self) -> float:
        """The configured limit now (requests/s)."""
        return self.overall_control.config.ceiling

    def rates(self) -> dict[str, float]:
        """The current rates (requests/s): ``all`` together, then each endpoint's."""
        rates = {e: round(limiter.rate, 1) for e, limiter in self.limiters.items()}
        return {"all": round(self.overall.rate, 1), **rates}


def _current_task() -> asyncio.Task[Any] | None:
    """The running task; None outside an event loop (a caller reporting a response from plain code)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
