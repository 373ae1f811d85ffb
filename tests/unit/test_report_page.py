"""The report page's pure parts: the per-second timeline, its percentiles, the page's text and links."""

from __future__ import annotations

import re

import pytest

from transforms.report_page import page_link, render_report_page, retry_commands
from transforms.run_timeline import Timeline, latency_percentiles, merged, series

T0 = 1_800_000_000.0


def test_timeline_counts_requests_429s_and_5xx_per_second() -> None:
    tl = Timeline()
    tl.request("attach", 200, 0.02, T0 + 0.1)
    tl.request("attach", 429, 0.01, T0 + 0.9)
    tl.request("upload", 503, 0.05, T0 + 1.2)
    tl.request("upload", "dropped", 0.05, T0 + 1.3)
    tl.rows_settled(7, T0 + 1.5)
    assert dict(tl.seconds[int(T0)]) == {"requests": 2, "429": 1}
    assert dict(tl.seconds[int(T0) + 1]) == {"requests": 2, "5xx": 1, "rows": 7}


def test_timelines_of_two_workers_merge_by_adding_and_survive_json() -> None:
    a, b = Timeline(), Timeline()
    a.request("attach", 200, 0.02, T0)
    b.request("attach", 200, 0.2, T0)
    b.rows_settled(3, T0 + 5)
    total = merged([a.as_dict(), b.as_dict()])
    assert total.seconds[int(T0)]["requests"] == 2
    assert total.seconds[int(T0) + 5]["rows"] == 3
    assert sum(total.latency["attach"]) == 2


def test_series_bins_a_long_run_and_keeps_per_second_rates() -> None:
    tl = Timeline()
    for s in range(3600):  # an hour at 10 requests/s
        for _ in range(10):
            tl.request("upload", 200, 0.01, T0 + s)
    out = series(tl, max_points=600)
    assert len(out["t"]) == 600
    assert out["bin_s"] == [6.0]
    assert all(v == pytest.approx(10.0) for v in out["requests"])


def test_latency_percentiles_are_within_a_bucket_of_the_truth() -> None:
    tl = Timeline()
    for ms in range(1, 1001):  # 1..1000 ms, uniform
        tl.request("attach", 200, ms / 1000, T0)
    p = latency_percentiles(tl)["attach"]
    assert p["requests"] == 1000
    for key, truth in (("p50", 500), ("p90", 900), ("p99", 990)):
        assert truth <= p[key] <= truth * 1.25, (key, p[key])


SUMMARY = {
    "run_id": "20261129T140000Z-abc123", "rows_in": 10, "counts_add_up": True,
    "by_status": {"attached": 5, "rejected": 2, "failed": 2, "unknown": 1, "skipped": 0},
    "by_reason": {"missing_object": 2, "retries_exhausted": 2, "outcome_unknown": 1},
    "manifest": "s3://b/in/m.csv", "report_root": "s3://b/reports",
    "settings": {"api_url": "https://api.example", "note": "<script>alert(1)</script>"},
}


def test_page_shows_counts_reasons_and_the_retry_commands_and_escapes_text() -> None:
    page = render_report_page(SUMMARY, Timeline(), exit_code=1)
    tiles = dict(re.findall(r'data-status="(\w+)".*?data-count="(\d+)"', page))
    assert tiles == {k: str(v) for k, v in SUMMARY["by_status"].items()}
    assert "kyc-attach run s3://b/in/m.csv --report-uri s3://b/reports --retry-failed 20261129T140000Z-abc123" in page
    assert "--resend-unknown" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'data-exit-code="1"' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere


def test_no_retry_command_when_nothing_failed() -> None:
    assert retry_commands({**SUMMARY, "by_status": {"attached": 10}}) == []


@pytest.mark.parametrize(("location", "endpoint", "link"), [
    ("s3://b/r/1/report.html", None, "https://s3.console.aws.amazon.com/s3/object/b?prefix=r/1/report.html"),
    ("s3://b/r/1/report.html", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/b/r/1/report.html"),
    ("/tmp/r/1/report.html", None, "file:///tmp/r/1/report.html"),
])
def test_page_link_follows_the_endpoint_in_use(location: str, endpoint: str | None, link: str) -> None:
    assert page_link(location, endpoint) == link


def test_retry_command_carries_the_mapping_and_quotes_paths() -> None:
    summary = {**SUMMARY, "manifest": "/data/my archive.csv", "mapping": "s3://cfg/maps/carrier_c.yaml"}
    (_, command), _ = retry_commands(summary)
    assert command == ("kyc-attach run '/data/my archive.csv' --report-uri s3://b/reports "
                       "--mapping s3://cfg/maps/carrier_c.yaml --retry-failed 20261129T140000Z-abc123")


def test_retry_command_in_hashed_report_mode_leaves_the_manifest_to_fill_in() -> None:
    summary = {**SUMMARY, "manifest": "s3://m/hmac:0123456789abcdef0123456789abcdef",
               "settings": {"report_s3_uri": "hashed"}}
    (_, command), _ = retry_commands(summary)
    assert command.startswith("kyc-attach run MANIFEST --report-uri s3://b/reports ")


def test_retry_command_in_hashed_report_mode_leaves_the_mapping_to_fill_in() -> None:
    summary = {**SUMMARY, "manifest": "s3://m/hmac:0123456789abcdef0123456789abcdef",
               "mapping": "s3://cfg/hmac:fedcba9876543210fedcba9876543210", "settings": {"report_s3_uri": "hashed"}}
    (_, command), _ = retry_commands(summary)
    assert " --mapping MAPPING " in command and "hmac:" not in command
