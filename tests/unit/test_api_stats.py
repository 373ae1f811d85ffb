"""The summary's api section: the 429 share, time spent throttled, requests per 10 s."""

from __future__ import annotations

from connectors.fin import ApiStats
from flows.progress import report_markdown


def test_api_stats_give_the_429_share_the_rate_buckets_and_time_throttled() -> None:
    stats = ApiStats()
    for status in (200, 200, 429, 200):
        stats.note("upload", status, 0.01)
    stats.throttle_began()
    stats.throttle_began()  # two requests waiting at once count once in time
    stats.throttle_ended()
    stats.throttle_ended()
    out = stats.as_dict()
    assert out["share_429"] == 0.25
    assert out["per_10s"] == [{"from_s": 0, "requests": 4, "429": 1}]
    assert 0.0 <= out["throttled_seconds"] < 1.0
    md = report_markdown({"api": out})
    assert "25.0% of requests answered 429" in md and "Requests/s by 10 s: 0" in md
