"""A run cancelled after it began sending (its task cancelled, or Ctrl-C) still writes the report of every row, one
status each, and the cancellation goes on (real S3 server, Fin sandbox, Prefect flow run)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.e2e.helpers import report_of_a_run_stopped_after_sending, written_summary
from tests.support.scenario import DemoScenario, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_a_run_cancelled_after_its_first_attaches_writes_the_report_of_every_row(
        demo_scenario: Callable[..., DemoScenario]) -> None:
    from flows.attach_flow import attach_manifest

    # attaches take a while each, so the run is still sending when it is cancelled
    scenario = demo_scenario(customers=6, faults={"latency": {"distribution": "fixed", "ms": 400,
                                                              "endpoints": ["attach"]}},
                             KYC_ATTACH_SHARD_ROWS="4", KYC_ATTACH_MAX_SHARDS="16")

    async def cancelled_after_the_first_attaches() -> None:
        run = asyncio.create_task(attach_manifest(scenario.manifest, f"s3://{scenario.bucket}/reports",
                                                  run_id="r1", return_state=True))
        while not (await asyncio.to_thread(sandbox_record, scenario.sandbox_url))["attachments"]:
            assert not run.done(), "the run ended before anything was attached"
            await asyncio.sleep(0.05)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(cancelled_after_the_first_attaches())

    # one row per file: a document of two sides is one attachment of two files
    files_attached = sum(len(a["files"]) for a in scenario.record()["attachments"])
    report = report_of_a_run_stopped_after_sending(scenario.bucket, "r1", len(scenario.rows))
    assert files_attached >= sum(1 for r in report if r["status"] == "attached")
    written = written_summary(scenario.bucket, "r1")
    assert written["counts_add_up"] and written["rows_in"] == len(scenario.rows)
    assert written["stopped_early"] == "stopped after sending began: cancelled (CancelledError)"
