"""The API's rate right now, read from a run's per-second timeline (pure: the caller gives the time)."""

from __future__ import annotations

from dataclasses import dataclass

from transforms.run_timeline import REQUESTS, THROTTLED, Timeline


@dataclass(frozen=True)
class RecentRate:
    """Requests answered per second over the last whole seconds, and the share of them that were 429s."""

    requests_per_s: float
    share_429: float


def recent_rate(tl: Timeline, now: float, *, width_s: int = 5) -> RecentRate:
    """The last ``width_s`` whole seconds before ``now`` (epoch seconds); the current second, still filling, is
    left out so the figure does not dip each time a second begins."""
    last = int(now) - 1
    seconds = [tl.seconds.get(s) for s in range(last - width_s + 1, last + 1)]
    requests = sum(c.get(REQUESTS, 0) for c in seconds if c)
    throttled = sum(c.get(THROTTLED, 0) for c in seconds if c)
    return RecentRate(requests / width_s, throttled / requests if requests else 0.0)
