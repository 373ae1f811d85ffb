"""The simulated clients and gateways that several pacing test files share: each sends through the real
controller or limiters on a fake or virtual clock against token buckets, and returns what got through."""

from __future__ import annotations

import heapq
import random

from bench.support.gateway_sim import Bucket, Result, VirtualClock, simulate
from connectors.rate_limiter import EndpointLimiters
from tests.support.fake_clock import FakeClock
from tests.support.rate_answers import answer_controller, answer_limiters, next_request
from transforms.rate_control import RateControl, RateController


def three_streams_against_a_gateway(seconds: float, *, limit: float = 100.0, burst: float = 10.0,
                                    ceiling: float = 1000.0, noise: float = 0.10,
                                    seed: int = 1, measure_from: float | None = None
                                    ) -> tuple[float, float, EndpointLimiters]:
    """Returns (successes/s of all endpoints, 429 share, the limiters), measured from ``measure_from`` (by default
    the second half) to the end."""
    start = seconds / 2 if measure_from is None else measure_from
    rng = random.Random(seed)
    clock = FakeClock()
    limiters = EndpointLimiters(ceiling, clock=clock)
    demand = {"customer": 15.0, "upload": 1e9, "attach": 15.0}
    due = dict.fromkeys(demand, 0.0)
    last_any = -1.0
    tokens, stamp = burst, 0.0
    sent = ok = 0
    pending: list[tuple[float, str, bool, float]] = []
    while True:
        endpoint, t = next_request(due, last_any, limiters)
        if t > seconds:
            break
        answer_limiters(pending, t, limiters, clock)
        clock.now = last_any = t
        tokens, stamp = min(burst, tokens + (t - stamp) * limit), t
        throttled = tokens < 1.0 or rng.random() < noise
        if not throttled:
            tokens -= 1.0
        if t >= start:
            sent += 1
            ok += not throttled
        pending.append((t + 0.02, endpoint, throttled, t))
        pending.sort()
        due[endpoint] = t + max(1.0 / limiters.limiters[endpoint].rate, 1.0 / demand[endpoint])
    return ok / (seconds - start), 1.0 - ok / sent, limiters


def controller_with_jittered_answers(limit: float, burst: float, ceiling: float, seconds: float,
                                     seed: int) -> tuple[float, float]:
    """Sending as fast as allowed against a token bucket; answers 20-30 ms later. Returns (successes/s, 429 share)."""
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=ceiling), now=0.0)
    tokens, stamp, t = burst, 0.0, 0.0
    pending: list[tuple[float, bool, float]] = []
    sent = refused = 0
    while t < seconds:
        t += 1.0 / ctl.rate
        answer_controller(pending, t, ctl)
        tokens, stamp = min(burst, tokens + (t - stamp) * limit), t
        throttled = tokens < 1.0
        if not throttled:
            tokens -= 1.0
        sent += 1
        refused += throttled
        heapq.heappush(pending, (t + 0.02 + rng.uniform(0, 0.01), throttled, t))
    return (sent - refused) / seconds, refused / sent


def sends_against_a_bucket(limit: float, burst: float, seconds: float, seed: int, *, jitter: float = 0.3,
                           latency: float = 0.02, drop: tuple[float, float] | None = None,
                           noise: tuple[float, float, float] | None = None) -> list[tuple[float, bool]]:
    """(sent at, refused) of every request of a controller sending at its rate against a token bucket (``drop``: at
    that time, the bucket's rate becomes that; ``noise``: from, until, share: requests the bucket let through are
    refused at random in that span, their token spent)."""
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=1000.0), now=0.0)
    tokens, stamp, t = burst, 0.0, 0.0
    pending: list[tuple[float, bool, float]] = []
    sends: list[tuple[float, bool]] = []
    while t < seconds:
        t += 1.0 / ctl.rate
        while pending and pending[0][0] <= t:
            at, throttled, sent_at = heapq.heappop(pending)
            ctl.on_throttle(at, sent_at=sent_at) if throttled else ctl.on_success(at)
        if drop is not None and t >= drop[0]:
            limit = drop[1]
        tokens, stamp = min(burst, tokens + (t - stamp) * limit), t
        refused = tokens < 1.0
        if not refused:
            tokens -= 1.0
            refused = noise is not None and noise[0] <= t < noise[1] and rng.random() < noise[2]
        sends.append((t, refused))
        heapq.heappush(pending, (t + latency * (1.0 + jitter * (2.0 * rng.random() - 1.0)), refused, t))
    return sends


def refused_share(sends: list[tuple[float, bool]], start: float, end: float) -> float:
    window = [refused for t, refused in sends if start <= t < end]
    return sum(window) / len(window)


def attach_limit_not_told(seed: int, seconds: float = 30.0) -> Result:
    """Through ``EndpointLimiters.acquire`` on a virtual clock, not told any limit (ceiling 1000/s): one gateway bucket
    of 100/s holding 10 for the whole client, attaches also through a bucket of one at 10/s, answers 20 ms +-30%
    later; look-ups at 15/s, uploads and attaches as fast as 16 and 4 workers go (the end-to-end harsh case with an
    attach-only limit of R/10)."""
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    return simulate(limiters, seconds, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                    gateway=Bucket(100.0, 10.0), endpoint_buckets={"attach": Bucket(10.0, 1.0)}, jitter=0.3,
                    seed=seed)


def attaches_under_an_attach_limit(seed: int) -> tuple[float, float]:
    """(attaches/s that got through, 429 share of all requests) over seconds 15-30 of ``attach_limit_not_told``."""
    result = attach_limit_not_told(seed)
    return result.count(15.0, 30.0, "attach", ok=True) / 15.0, result.share_429(15.0, 30.0)


# answered so long after they leave, per endpoint (uploads: large files)
LATENCY = {"customer": 0.02, "upload": 1.0, "attach": 0.05}


def share_429_with_slow_uploads(seed: int, seconds: float = 30.0, settle: float = 10.0) -> float:
    rng = random.Random(seed)
    clock = FakeClock()
    limiters = EndpointLimiters(1000.0, clock=clock)
    demand = {"customer": 15.0, "upload": 1e9, "attach": 15.0}
    due = dict.fromkeys(demand, 0.0)
    last_any = -1.0
    tokens, stamp = 10.0, 0.0
    sent = refused = 0
    pending: list[tuple[float, str, bool, float]] = []
    while True:
        endpoint, t = next_request(due, last_any, limiters)
        if t > seconds:
            break
        answer_limiters(pending, t, limiters, clock)
        clock.now = last_any = t
        tokens, stamp = min(10.0, tokens + (t - stamp) * 100.0), t
        throttled = tokens < 1.0
        if not throttled:
            tokens -= 1.0
        if t >= settle:
            sent += 1
            refused += throttled
        heapq.heappush(pending, (t + LATENCY[endpoint] + rng.uniform(0, 0.05), endpoint, throttled, t))
        due[endpoint] = t + max(1.0 / limiters.limiters[endpoint].rate, 1.0 / demand[endpoint])
    return refused / sent


def sent_per_second_under_random_429s(seed: int, *, demand: float = 30.0, noise: float = 0.10,
                                      seconds: float = 20.0) -> float:
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=1000.0), now=0.0)
    t = 0.0
    pending: list[tuple[float, bool, float]] = []
    sent_late = 0
    while t < seconds:
        t += max(1.0 / ctl.rate, 1.0 / demand)
        answer_controller(pending, t, ctl)
        sent_late += t > seconds / 2
        heapq.heappush(pending, (t + 0.02, rng.random() < noise, t))
    return sent_late / (seconds / 2)


def found_after_rise(seed: int, *, strays: float = 0.01, rise_at: float = 20.0, seconds: float = 50.0) -> float:
    """Seconds after the rise until 18 successes fell within one second (inf: not in the run)."""
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=1000.0), now=0.0)
    tokens, stamp, t = 1.0, 0.0, 0.0
    pending: list[tuple[float, bool, float]] = []
    oks: list[float] = []
    while t < seconds:
        t += 1.0 / ctl.rate
        while pending and pending[0][0] <= t:
            at, throttled, sent_at = heapq.heappop(pending)
            ctl.on_throttle(at, sent_at=sent_at) if throttled else ctl.on_success(at)
        limit = 20.0 if t >= rise_at else 10.0
        tokens, stamp = min(1.0, tokens + (t - stamp) * limit), t
        refused = tokens < 1.0
        if not refused:
            tokens -= 1.0
            refused = rng.random() < strays
        if not refused and t >= rise_at:
            oks.append(t)
            recent = [x for x in oks if x > t - 1.0]
            if t - rise_at >= 1.0 and len(recent) >= 18:
                return t - rise_at
        heapq.heappush(pending, (t + 0.02 * (1.0 + 0.3 * (2.0 * rng.random() - 1.0)), refused, t))
    return float("inf")
