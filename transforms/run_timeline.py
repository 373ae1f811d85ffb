"""How a run went over time: per-second counters and per-endpoint latency histograms (pure, clock passed in).

Recorded during the run for the report page (``transforms.report_page``). Each event costs a dict lookup and an
increment, so recording stays negligible next to an HTTP request. Seconds are absolute (epoch) seconds, so the
timelines of fanned-out shard runs on other workers merge by adding their counters.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Counter names of one second.
ROWS, REQUESTS, THROTTLED, SERVER_ERRORS = "rows", "requests", "429", "5xx"

# Latency buckets grow by 25%: from 1 ms, bucket k holds [1.25**k, 1.25**(k+1)) ms, so a percentile read from the
# histogram is within 25% of the true one with 80 small integers per endpoint, whatever the number of requests.
_GROWTH = 1.25
_BUCKETS = 80


def _bucket(elapsed_s: float) -> int:
    ms = max(elapsed_s * 1000.0, 1.0)
    return min(int(math.log(ms, _GROWTH)), _BUCKETS - 1)


def _bucket_upper_ms(k: int) -> float:
    return float(_GROWTH ** (k + 1))


@dataclass
class Timeline:
    """Counters per second of the run (rows settled, API requests, 429s, 5xx) and latency per endpoint."""

    seconds: defaultdict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latency: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * _BUCKETS))

    def rows_settled(self, count: int, now: float) -> None:
        """``count`` rows got their final status at ``now`` (epoch seconds)."""
        if count:
            self.seconds[int(now)][ROWS] += count

    def request(self, endpoint: str, status: int | str, elapsed_s: float, now: float) -> None:
        """One API request ended at ``now`` with ``status`` (an HTTP code, or a transport error's name)."""
        second = self.seconds[int(now)]
        second[REQUESTS] += 1
        if status == 429:
            second[THROTTLED] += 1
        elif isinstance(status, int) and status >= 500:
            second[SERVER_ERRORS] += 1
        self.latency[endpoint][_bucket(elapsed_s)] += 1

    def merge(self, other: Timeline) -> None:
        """Add another timeline's counters (a shard run on another worker) to this one."""
        for sec, counts in other.seconds.items():
            self.seconds[sec].update(counts)
        for endpoint, hist in other.latency.items():
            mine = self.latency[endpoint]
            for k, n in enumerate(hist):
                mine[k] += n

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for ``timeline.json`` and for shard runs to hand their part to the parent)."""
        return {
            "seconds": {str(s): dict(c) for s, c in sorted(self.seconds.items())},
            "latency_buckets": {e: list(h) for e, h in sorted(self.latency.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timeline:
        """The inverse of ``as_dict``; unknown or missing parts are ignored (an older shard run)."""
        tl = cls()
        for sec, counts in (data.get("seconds") or {}).items():
            tl.seconds[int(sec)].update({str(k): int(v) for k, v in counts.items()})
        for endpoint, hist in (data.get("latency_buckets") or {}).items():
            if len(hist) == _BUCKETS:
                tl.latency[str(endpoint)] = [int(n) for n in hist]
        return tl


def merged(parts: Iterable[Mapping[str, Any]]) -> Timeline:
    """One timeline from several ``as_dict`` forms."""
    total = Timeline()
    for part in parts:
        total.merge(Timeline.from_dict(part))
    return total


def series(tl: Timeline, *, max_points: int = 600) -> dict[str, list[float]]:
    """The per-second counters as aligned lists from the run's first second, binned so at most ``max_points``.

    ``t`` is the start of each bin in seconds since the first event; counters are per second (a bin's sum divided
    by its width), so the axis reads "per second" whatever the run's length.
    """
    if not tl.seconds:
        return {"t": [], ROWS: [], REQUESTS: [], THROTTLED: [], SERVER_ERRORS: [], "bin_s": [1.0]}
    first, last = min(tl.seconds), max(tl.seconds)
    span = last - first + 1
    width = max(1, math.ceil(span / max_points))
    bins = math.ceil(span / width)
    out: dict[str, list[float]] = {name: [0.0] * bins for name in (ROWS, REQUESTS, THROTTLED, SERVER_ERRORS)}
    for sec, counts in tl.seconds.items():
        i = (sec - first) // width
        for name in out:
            out[name][i] += counts.get(name, 0)
    for name in out:
        out[name] = [v / width for v in out[name]]
    out["t"] = [float(i * width) for i in range(bins)]
    out["bin_s"] = [float(width)]
    return out


def windows(tl: Timeline, width_s: int = 10) -> list[dict[str, int]]:
    """API requests and 429s per ``width_s`` seconds from the first recorded second (the summary's ``per_10s``)."""
    if not tl.seconds:
        return []
    first, last = min(tl.seconds), max(tl.seconds)
    out = [{"from_s": i * width_s, REQUESTS: 0, THROTTLED: 0} for i in range((last - first) // width_s + 1)]
    for sec, counts in tl.seconds.items():
        window = out[(sec - first) // width_s]
        window[REQUESTS] += counts.get(REQUESTS, 0)
        window[THROTTLED] += counts.get(THROTTLED, 0)
    return out


def latency_percentiles(tl: Timeline, quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[str, dict[str, float]]:
    """Per endpoint: request count and latency percentiles in ms (each the upper edge of its histogram bucket)."""
    out: dict[str, dict[str, float]] = {}
    for endpoint, hist in sorted(tl.latency.items()):
        total = sum(hist)
        if not total:
            continue
        row: dict[str, float] = {"requests": float(total)}
        for q in quantiles:
            need, seen = q * total, 0
            for k, n in enumerate(hist):
                seen += n
                if seen >= need:
                    row[f"p{round(q * 100):d}"] = round(_bucket_upper_ms(k), 1)
                    break
        top = max(k for k, n in enumerate(hist) if n)
        row["max"] = round(_bucket_upper_ms(top), 1)
        out[endpoint] = row
    return out


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
