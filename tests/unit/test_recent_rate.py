"""The API's recent rate read from a run's timeline: what the live progress line shows."""

from __future__ import annotations

from transforms.run_timeline import Timeline, recent_rate


def _timeline(per_second: dict[int, tuple[int, int]]) -> Timeline:
    tl = Timeline()
    for second, (ok, throttled) in per_second.items():
        for i in range(ok):
            tl.request("upload", 200, 0.02, second + i / (ok + throttled + 1))
        for _ in range(throttled):
            tl.request("attach", 429, 0.02, second + 0.5)
    return tl


def test_recent_rate_is_over_the_last_whole_seconds_and_leaves_the_current_one_out() -> None:
    tl = _timeline({100: (50, 0), 101: (90, 10), 102: (95, 5), 103: (7, 0)})  # 103 is still filling
    rate = recent_rate(tl, 103.4, width_s=2)
    assert rate.requests_per_s == (100 + 100) / 2
    assert rate.share_429 == 15 / 200


def test_quiet_seconds_count_as_zero_and_no_requests_means_no_share() -> None:
    tl = _timeline({100: (40, 0)})
    assert recent_rate(tl, 103.0, width_s=4).requests_per_s == 10.0  # 100..102: one busy second of four
    assert recent_rate(Timeline(), 50.0).share_429 == 0.0
