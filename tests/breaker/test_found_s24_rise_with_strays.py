"""Session 24: a limit that rises while held (29fcff0, ``RateControl.hold_s``), with a few stray 429s.

One controller not told the limit (ceiling 1000/s) sends at its rate against a bucket of one at 10/s (the attach
limit), answers 20 ms +-30% later; 1% of the requests that got through are refused anyway (a whole-client gateway's
stray 429s land on attach so: in ``sim_s22`` with a gateway of 100/s holding 10, attach saw one every few seconds).
At 20 s the limit rises to 20/s. "Found": 18 attaches got through within one second.

29fcff0^ found it 5-10 s after the rise (12 of 12 seeds). On 29fcff0 a stray 429 at the plateau (or just past the
top, +3%) is a cut within ``hold_span`` of the last touch, so it is held anew for 5 s after each climb back, and the
rate never probes far past 10/s: found 10-25 s after the rise or not within 30 s (5 of 12 seeds within 15 s; with
2-3% strays most never). The same through ``EndpointLimiters.acquire`` (``sim_s22``, gateway 100/s holding 10,
attach bucket 10/s -> 20/s at 20 s, no random 429s): 29fcff0^ 5-15 s, 29fcff0 10-27 s or not in 30 s.

Tried, not kept: a cut at or under the top during a hold keeps only what was left of it (the hold counting its
seconds at the top, or the time since it began, or a chain of holds capped at 1-3 x hold_s): found 6-25 s, still
some never, and the attach-jitter sweep fell (8.65 / 8.97 -> 8.38-8.66 / 8.70-8.98 attaches/s): the renewed holds
are what spares the bench's constant limit its probes.
"""

from __future__ import annotations

import heapq
import random

import pytest

from transforms.rate_control import RateControl, RateController


def _found_after_rise(seed: int, *, strays: float = 0.01, rise_at: float = 20.0, seconds: float = 50.0) -> float:
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


def test_a_limit_that_rises_under_stray_429s_is_found_within_hold_s_of_before() -> None:
    # Fixed in session 24 by a shorter hold (hold_s 5 s -> 3 s): 6.0-22.2 s, 10 of 12 within 15 s.
    found = [_found_after_rise(seed) for seed in range(12)]
    assert sum(f <= 15.0 for f in found) >= 10  # 29fcff0^: 12 (5.1-10.3 s); 29fcff0 (hold_s 5 s): 5


@pytest.mark.xfail(strict=True, reason=(
    "known gap (from 29fcff0): under 2% stray 429s each stray at the plateau renews the hold, and a limit that "
    "doubles is not found within 30 s in 3 of 12 seeds (29fcff0^: 1 of 12); a renewal only from a probe past the top, "
    "or two 429s to cut while held, cost the attach-jitter sweep 0.1-0.3 attaches/s"))
def test_a_limit_that_rises_under_more_stray_429s_is_found() -> None:
    found = [_found_after_rise(seed, strays=0.02) for seed in range(12)]
    assert sum(f <= 15.0 for f in found) >= 10  # 29fcff0^: 11 (5.5-11.7 s); hold_s 3 s: 6
