"""Turns a `Faults` configuration into a fate for each request, reproducibly.

Reproducibility: each endpoint has its own random stream seeded from (seed, endpoint), and every request
draws the same fixed number of values from it whatever the configuration. So under one seed the n-th
request to an endpoint meets the same fate, however requests to other endpoints interleave with it.
Rate limits depend on the clock and are the one exception. Random 429s draw from a stream of their own per
endpoint, so turning them on leaves every other fate of a seed as it was.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

from sandbox.faults import Faults, Latency, RateLimit

_NORMAL = NormalDist()
# Values drawn per request: latency, error, error status pick, drop, slow, commit-then-fail, its mode.
_DRAWS = 7


@dataclass(frozen=True, slots=True)
class Fate:
    """What happens to one request. The defaults are a well-behaved request."""

    latency_s: float = 0.0
    error_status: int | None = None
    drop: bool = False
    slow_s: float = 0.0
    commit_then_fail: Literal["500", "drop"] | None = None
    html_200: bool = False
    dribble_s: float = 0.0  # seconds between the bytes of the answer's body
    huge_bytes: int = 0  # a success answer padded to this size


CALM = Fate()


class TokenBucket:
    """A classic token bucket; `take()` answers None when allowed, else the seconds until a token."""

    def __init__(self, rps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rps = rps
        self.burst = burst
        self.tokens = float(burst)
        self.clock = clock
        self.stamp = clock()

    def take(self) -> float | None:
        """Take one token if there is one; otherwise return how long until the next one."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rps)
        self.stamp = now
        if self.tokens >= 1.0 - 1e-9:  # float dust: requests exactly 1/rps apart refill to 0.9999999
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rps


def _inner_mean(counts: Counter[int]) -> float:
    """Mean count per second over the whole seconds between the first and the last second counted."""
    if len(counts) < 3:
        return 0.0
    inner = [counts.get(s, 0) for s in range(min(counts) + 1, max(counts))]
    return round(sum(inner) / len(inner), 1)


def _every_second(counts: Counter[int], like: Counter[int] | None = None) -> list[int]:
    """The count of every second from the first counted to the last (of ``like``, when given), the empty ones
    too."""
    span = counts if like is None else like
    return [counts.get(s, 0) for s in range(min(span), max(span) + 1)] if span else []


def latency_seconds(spec: Latency, u: float) -> float:
    """Map one uniform draw `u` in [0, 1) to a delay, by inverse transform (keeps one draw per request)."""
    if spec.distribution == "fixed":
        ms = spec.ms
    elif spec.distribution == "uniform":
        ms = spec.ms + u * ((spec.max_ms if spec.max_ms is not None else spec.ms) - spec.ms)
    elif spec.distribution == "exponential":
        ms = -spec.ms * math.log(1.0 - u)
    else:  # lognormal, `ms` is the median
        ms = spec.ms * math.exp(spec.sigma * _NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12)))
    if spec.max_ms is not None:
        ms = min(ms, spec.max_ms)
    return max(ms, 0.0) / 1000.0


class FaultInjector:
    """Runtime state for one `Faults` configuration: random streams and rate-limit buckets."""

    def __init__(self, faults: Faults | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.faults = faults or Faults()
        self.seed = self.faults.seed if self.faults.seed is not None else int.from_bytes(os.urandom(8), "big")
        self._clock = clock
        self._streams: dict[str, random.Random] = {}
        # A bucket per limit entry (shared by its endpoints), or per (entry, endpoint) when per_endpoint.
        self._buckets: dict[tuple[int, str], TokenBucket] = {}
        self._noise: dict[str, random.Random] = {}
        self._misshapen: dict[str, random.Random] = {}
        # Requests let through the limits, by whole second of the clock: what a gateway's meter would show.
        self.passed_per_second: Counter[int] = Counter()
        self.attaches_per_second: Counter[int] = Counter()  # the same for attach alone (limited apart, often)
        self.refused_per_second: Counter[int] = Counter()  # 429s answered, by whole second: where a client overshot
        # ... and for the work: all but token requests. A client asks for its token in its start-up checks, seconds
        # before its first upload when it plans a manifest first; the mean rate spans the work, not that start.
        self.work_per_second: Counter[int] = Counter()
        # The gate of the `hold` fault: requests it holds wait for it to open; `held` counts those waiting now.
        self.released = asyncio.Event()
        self.held = 0

    def _bucket(self, index: int, limit: RateLimit, endpoint: str) -> TokenBucket:
        key = (index, endpoint if limit.per_endpoint else "*")
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(limit.rps, limit.burst, self._clock)
        return bucket

    def throttle(self, endpoint: str) -> tuple[float, bool] | None:
        """None when the request may pass; else (seconds to wait, whether to send Retry-After).

        Every rate limit that applies takes a token (an overall and a per-endpoint limit both count the
        request); a random 429, when configured, is drawn after them.
        """
        refused: tuple[float, bool] | None = None
        for index, limit in enumerate(self.faults.rate_limit):
            if not limit.applies_to(endpoint):
                continue
            wait = self._bucket(index, limit, endpoint).take()
            if wait is not None and (refused is None or wait > refused[0]):
                refused = (wait, limit.retry_after)
        if refused is None:
            refused = self._random_429(endpoint)
        if refused is not None:
            self.refused_per_second[int(self._clock())] += 1
        else:
            self.passed_per_second[int(self._clock())] += 1
            if endpoint != "token":
                self.work_per_second[int(self._clock())] += 1
            if endpoint == "attach":
                self.attaches_per_second[int(self._clock())] += 1
        return refused

    async def wait_at_gate(self, endpoint: str) -> None:
        """Return once the gate is open, at once when no `hold` applies to `endpoint`."""
        if self.faults.first("hold", endpoint) is None or self.released.is_set():
            return
        self.held += 1
        try:
            await self.released.wait()
        finally:
            self.held -= 1

    def _random_429(self, endpoint: str) -> tuple[float, bool] | None:
        noise = self.faults.first("random_429", endpoint)
        if noise is None:
            return None
        stream = self._noise.get(endpoint)
        if stream is None:
            stream = self._noise[endpoint] = random.Random(f"{self.seed}/{endpoint}/429")
        return (1.0, noise.retry_after) if stream.random() < noise.share else None

    def rate_seen(self) -> dict[str, float | list[int]]:
        """Requests let through: the most in any one second of the clock, the seconds that had any, and the mean
        over the seconds between the first and the last (both partial, so left out) of the work (token requests
        left out) and of attaches."""
        counts = self.passed_per_second
        return {"max_per_second": max(counts.values(), default=0), "seconds": len(counts),
                "inner_mean": _inner_mean(self.work_per_second),
                "attach_inner_mean": _inner_mean(self.attaches_per_second),
                "per_second": _every_second(counts), "attach_per_second": _every_second(self.attaches_per_second),
                "refused_per_second": _every_second(self.refused_per_second, like=counts)}

    def fate(self, endpoint: str) -> Fate:
        """Draw the fate of the next request to `endpoint`."""
        f = self.faults
        if not f.active:
            return CALM
        stream = self._streams.get(endpoint)
        if stream is None:
            stream = self._streams[endpoint] = random.Random(f"{self.seed}/{endpoint}")
        u = [stream.random() for _ in range(_DRAWS)]

        latency = f.first("latency", endpoint)
        errors = f.first("errors", endpoint)
        drop = f.first("drop", endpoint)
        slow = f.first("slow", endpoint)
        ctf = f.first("commit_then_fail", endpoint)
        ctf_mode: Literal["500", "drop"] | None = None
        if ctf is not None and u[5] < ctf.share:
            ctf_mode = ("500" if u[6] < 0.5 else "drop") if ctf.mode == "either" else ctf.mode
        return Fate(
            latency_s=latency_seconds(latency, u[0]) if latency is not None else 0.0,
            error_status=(
                errors.statuses[int(u[2] * len(errors.statuses))]
                if errors is not None and u[1] < errors.share
                else None
            ),
            drop=drop is not None and u[3] < drop.share,
            slow_s=slow.seconds if slow is not None and u[4] < slow.share else 0.0,
            commit_then_fail=ctf_mode,
            **self._misshape(endpoint),
        )

    def _misshape(self, endpoint: str) -> dict[str, Any]:
        """The answer-garbling part of a fate, from its own stream (three draws per request when configured)."""
        f = self.faults
        if not f.answers_misshapen:
            return {}
        stream = self._misshapen.get(endpoint)
        if stream is None:
            stream = self._misshapen[endpoint] = random.Random(f"{self.seed}/{endpoint}/answer")
        u = [stream.random() for _ in range(3)]
        html, dribble, huge = (f.first(kind, endpoint) for kind in ("html_200", "dribble", "huge_body"))
        return {
            "html_200": html is not None and u[0] < html.share,
            "dribble_s": dribble.interval_s if dribble is not None and u[1] < dribble.share else 0.0,
            "huge_bytes": int(huge.mib * 1024 * 1024) if huge is not None and u[2] < huge.share else 0,
        }
