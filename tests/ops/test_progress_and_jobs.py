"""Progress events, the CLI bar, the final markdown, the shard log line; job markers and the inbox listing."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from connectors.job_ids import job_id_of
from connectors.jobs import completion_of, is_completed, list_manifests, mark_completed
from connectors.manifest import open_manifest
from connectors.objects import ObjectStore
from flows.progress import ProgressEvent, RunProgress, listen, report_markdown, rich_bar, shard_log_line


def test_run_progress_reaches_100_and_listeners_see_every_step() -> None:
    events: list[ProgressEvent] = []

    async def run() -> None:
        p = RunProgress(10, artifact=False)
        await p.start(2)
        await p.advance(5)
        await p.advance(3)
        await p.finish()

    with listen(events.append):
        asyncio.run(run())
    assert [(e.done, e.percent) for e in events] == [(2, 20.0), (7, 70.0), (10, 100.0), (10, 100.0)]
    assert events[-1].final
    assert ProgressEvent(0, 0).percent == 100.0  # an empty manifest is done


def test_rich_bar_shows_rows_rate_and_eta() -> None:
    buf = io.StringIO()
    with rich_bar(Console(file=buf, force_terminal=True, width=150)) as show:
        show(ProgressEvent(50, 200))
        show(ProgressEvent(200, 200, final=True))
    text = buf.getvalue()
    assert "200/200" in text and "rows/s" in text and "ETA" in text


def test_listeners_hear_the_api_rate_while_requests_go_and_not_after() -> None:
    from transforms.run_timeline import Timeline

    timeline = Timeline()
    for i in range(80):  # second 200: 80 answers, 8 of them 429s
        timeline.request("upload", 429 if i % 10 == 0 else 200, 0.02, 200 + i / 100)
    events: list[ProgressEvent] = []

    async def run() -> None:
        p = RunProgress(10, artifact=False)
        await p.start(0)
        async with p.api_rate(timeline, every_s=0.01, clock=lambda: 201.5):
            while not any(e.api for e in events):
                await asyncio.sleep(0.01)
        await p.advance(10)

    with listen(events.append):
        asyncio.run(asyncio.wait_for(run(), 10))
    live = [e.api for e in events if e.api]
    assert live[0].requests_per_s == 80 / 5 and live[0].share_429 == 0.1
    assert events[-1].api is None  # the block ended: no stale rate shown


def test_rich_bar_shows_the_api_rate() -> None:
    from transforms.run_timeline import RecentRate

    buf = io.StringIO()
    with rich_bar(Console(file=buf, force_terminal=True, width=150)) as show:
        show(ProgressEvent(50, 200, api=RecentRate(93.4, 0.012)))
    assert "93 req/s, 1.2% 429" in buf.getvalue()


def test_final_markdown_has_counts_reasons_endpoints_and_429s(monkeypatch: pytest.MonkeyPatch) -> None:
    # On AWS (no custom endpoint) the page is linked in the S3 console; elsewhere at the endpoint in use.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    summary = {"run_id": "r1", "rows_in": 7, "seconds": 1.5, "shards": 2, "report": "s3://b/reports/r1",
               "by_status": {"attached": 4, "rejected": 2, "failed": 1},
               "by_reason": {"bad_date": 2, "retries_exhausted": 1},
               "api": {"requests": {"attach": 5, "upload": 6}, "statuses": {"200": 9, "429": 3},
                       "mean_seconds": {"attach": 0.1, "upload": 0.2},
                       "slowest_seconds": {"attach": 0.4, "upload": 1.2}}}
    md = report_markdown(summary)
    assert "| attached | 4 |" in md and "| `bad_date` | 2 |" in md
    assert "429 (rate limited) **3**" in md
    assert md.index("| upload |") < md.index("| attach |")  # slowest endpoint first
    assert "(https://s3.console.aws.amazon.com/s3/object/b?prefix=reports/r1/report.html)" in md
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert "(http://127.0.0.1:9000/b/reports/r1/report.html)" in report_markdown(summary)


def test_shard_log_line_is_json() -> None:
    line = json.loads(shard_log_line("b0000-0009", {"attached": 3, "rejected": 1}, 0.25))
    assert line == {"event": "shard_done", "shard": "b0000-0009", "rows": 4, "seconds": 0.25,
                    "by_status": {"attached": 3, "rejected": 1}}


def test_completed_marker_only_for_real_runs_without_failed_or_unknown(tmp_path: Path) -> None:
    store, reports = ObjectStore(None), str(tmp_path / "reports")
    assert not mark_completed(store, reports, "j1", {"dry_run": True, "by_status": {"skipped": 3}})
    assert not mark_completed(store, reports, "j1", {"by_status": {"attached": 3, "failed": 1}})
    assert not mark_completed(store, reports, "j1", {"by_status": {"attached": 3, "unknown": 1}})
    assert not is_completed(store, reports, "j1")
    assert mark_completed(store, reports, "j1", {"run_id": "r", "by_status": {"attached": 3, "rejected": 2}})
    assert is_completed(store, reports, "j1")
    assert (tmp_path / "reports" / "_ledger" / "j1" / "COMPLETED").is_file()


def test_complete_job_with_restorable_rejects_wants_rework_for_a_bounded_number_of_nights(tmp_path: Path) -> None:
    store, reports = ObjectStore(None), str(tmp_path / "reports")
    by = {"by_status": {"attached": 3, "rejected": 3},
          "by_reason": {"missing_object": 1, "party_not_found": 1, "bad_country": 1}}
    assert mark_completed(store, reports, "j1", {"run_id": "r0", **by})
    seen = completion_of(store, reports, "j1")
    assert seen is not None and (seen.run_id, seen.reworkable_rejected, seen.reworks) == ("r0", 2, 0)
    for night in range(1, 3):
        assert seen.wants_rework(2)
        mark_completed(store, reports, "j1", {"run_id": f"r{night}", "include_rejected": ["missing_object"], **by})
        seen = completion_of(store, reports, "j1")
        assert seen is not None and seen.reworks == night
    assert not seen.wants_rework(2)
    mark_completed(store, reports, "j1", {"run_id": "r9", "by_status": {"attached": 3, "rejected": 1},
                                          "by_reason": {"bad_country": 1}})
    seen = completion_of(store, reports, "j1")
    assert seen is not None and not seen.wants_rework(2)  # only a rule-breaking row left: nothing to work


def test_inbox_lists_manifests_oldest_first_with_the_flow_s_job_id(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i, name in enumerate(["b.csv", "a.parquet", "c.csv", "notes.txt"]):
        (inbox / name).write_text(f"customer_id\n{i}\n")
        os.utime(inbox / name, (1_700_000_000 + 100 * (3 - i), 1_700_000_000 + 100 * (3 - i)))
    found = list_manifests(None, str(inbox))
    assert [Path(m.uri).name for m in found] == ["c.csv", "a.parquet", "b.csv"]
    for m in found:
        assert m.job_id == open_manifest(m.uri, store=None, cache_dir=tmp_path).job_id == job_id_of(m.uri, m.content_id)
