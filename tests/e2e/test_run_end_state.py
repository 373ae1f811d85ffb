"""A run's end as Prefect sees it: failed or unknown rows end the flow run ``Failed`` (report written first), and
every run emits an end event with its counts, never a value from the manifest."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL

from flows.attach_flow import attach_manifest
from flows.run_end import summary_of
from tests.support.scenario import NUMBER_OF_REFUSED_PARTY as NUMBER
from tests.support.scenario import api_env, read_report, stage_refused_party

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

def _end_events(run_id: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The end events of ``run_id`` the Prefect server holds (they arrive a moment after the run)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json={
            "filter": {"event": {"prefix": ["kyc-attach.run."]},
                       "resource": {"id": [f"kyc-attach.run.{run_id}"]}, "occurred": {"since": "2000-01-01T00:00:00Z"}},
            "limit": 10})
        answer.raise_for_status()
        events: list[dict[str, Any]] = answer.json()["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_a_run_with_failed_rows_ends_failed_with_its_counts_and_its_report_written(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    manifest, _ = stage_refused_party(bucket, fin_sandbox.url)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)

    state = asyncio.run(attach_manifest(manifest, f"s3://{bucket}/reports", run_id="ends-failed", return_state=True))

    assert state.is_failed()
    assert state.message is not None and "1 failed" in state.message and "1 attached" in state.message
    summary = asyncio.run(summary_of(state))
    assert [r["status"] for r in read_report(summary)].count("failed") == 1  # the report was written first

    (event,) = _end_events("ends-failed")
    assert event["event"] == "kyc-attach.run.partial"
    assert event["payload"]["by_status"]["failed"] == 1 and event["payload"]["by_status"]["attached"] == 1
    assert event["payload"]["by_reason"] == {"api_validation_failed": 1}
    assert NUMBER not in str(event) and "@" not in str(event["payload"])


def test_a_run_with_only_rejected_rows_stays_completed_unless_rejections_fail_it(
    demo_scenario: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = demo_scenario(customers=1)  # the demo manifest has bad rows on purpose: rejected, the rest attaches

    state = asyncio.run(attach_manifest(scenario.manifest, f"s3://{bucket}/reports", run_id="rejects-ok",
                                        return_state=True))
    summary = asyncio.run(summary_of(state))
    assert state.is_completed() and summary["by_status"]["rejected"] > 0
    assert summary["by_status"]["failed"] == summary["by_status"]["unknown"] == 0
    (event,) = _end_events("rejects-ok")
    assert event["event"] == "kyc-attach.run.completed"

    monkeypatch.setenv("KYC_ATTACH_REJECTIONS_FAIL_RUN", "true")
    state = asyncio.run(attach_manifest(scenario.manifest, f"s3://{bucket}/reports", run_id="rejects-fail",
                                        return_state=True))
    assert state.is_failed() and "rejected" in (state.message or "")
    assert asyncio.run(summary_of(state))["by_status"]["skipped"] > 0  # the second run skips what the first attached
