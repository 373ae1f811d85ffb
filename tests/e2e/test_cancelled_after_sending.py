"""A run cancelled after it began sending (its task cancelled, or Ctrl-C) still writes the report of every row, one
status each, and the cancellation goes on (real S3 server, Fin sandbox, Prefect flow run)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable

import pytest

from connectors.s3 import make_s3_client
from tests.support.scenario import DemoScenario, read_report, sandbox_record

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

    attached_by_the_api = len(scenario.record()["attachments"])
    report = read_report({"report": f"s3://{scenario.bucket}/reports/r1"})
    assert sorted(r["row_number"] for r in report) == list(range(1, len(scenario.rows) + 1))
    by_status = Counter(r["status"] for r in report)
    assert by_status["attached"] > 0
    stopped = [r for r in report if r["reason_code"] == "run_stopped"]
    assert stopped and all(r["status"] == "failed" for r in stopped)
    assert attached_by_the_api >= sum(1 for r in report if r["status"] == "attached")
    body = make_s3_client().get_object(Bucket=scenario.bucket, Key="reports/r1/summary.json")["Body"].read()
    written = json.loads(body)
    assert written["counts_add_up"] and written["rows_in"] == len(scenario.rows)
    assert written["stopped_early"] == "stopped after sending began: cancelled (CancelledError)"
