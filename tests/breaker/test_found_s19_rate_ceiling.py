"""Breaker s19: a shard run's ceiling (its share of R) moving under the limiters and controllers (fake clock)."""

from __future__ import annotations

import asyncio

from connectors.rate_limiter import SmoothLimiter
from transforms.rate_control import RateControl, RateController


def _cut_at_a_small_share(share: float) -> tuple[RateController, float]:
    """A controller run at ``share`` for a minute, cut once by a wall of 429s half way."""
    c = RateController(RateControl(ceiling=share, floor=min(0.5, share)), now=0.0)
    t = 0.0
    while t < 60.0:
        t += 1.0 / c.rate
        if 30.0 < t < 30.0 + 6.0 / c.rate:
            c.on_throttle(t)
        else:
            c.on_success(t)
    assert c.cuts >= 1
    return c, t


def test_a_cut_controller_given_a_much_larger_share_climbs_in_seconds() -> None:
    """32 shard runs at R = 10 share 0.3/s each; one 429 wall cuts a run. When the others end it gets R, and
    set_ceiling promises a climb 'along its cubic, as from a cut' (~1.5 s). It took ~28 s to reach 90 of 100/s
    (from a share of 2/s, ~5 s): the last runs of a fan-out crawl while the rate is theirs."""
    c, t = _cut_at_a_small_share(0.3)
    c.set_ceiling(100.0, 0.5)
    start = t
    while c.rate < 90.0 and t < start + 60.0:
        t += 1.0 / c.rate
        c.on_success(t)
    assert t - start < 5.0


def test_a_raised_share_reaches_a_request_already_waiting() -> None:
    """A request waiting at a share of 1/s keeps waiting out its second after the share became 100/s: the first
    request of every run that gets a larger share waits out the old interval (5 s at 0.2/s). Real time."""

    async def go() -> float:
        limiter = SmoothLimiter(1.0)
        await limiter.acquire()  # the token it starts with
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.05)
        limiter.set_rate(100.0)
        return await waiting

    assert asyncio.run(go()) < 0.5
