"""An error nobody foresaw, raised after the run began sending: the run still writes a report with every row and one
status each, names the error's type (never its message) in it, ends Failed, and the next run attaches nothing twice
(real S3 server, Fin sandbox, Prefect flow runs)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from connectors.s3 import make_s3_client
from tests.support.scenario import DemoScenario, read_report

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _first_run_state(scenario: DemoScenario) -> Any:
    from flows.attach_flow import attach_manifest

    return asyncio.run(attach_manifest(scenario.manifest, f"s3://{scenario.bucket}/reports", run_id="r1",
                                       return_state=True))


def _written_summary(bucket: str, run_id: str) -> dict[str, Any]:
    body = make_s3_client().get_object(Bucket=bucket, Key=f"reports/{run_id}/summary.json")["Body"].read()
    return json.loads(body)


def test_an_unexpected_error_in_a_shard_leaves_a_report_of_every_row_and_a_failed_run(
        demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.attach_flow as attach_flow

    scenario = demo_scenario(KYC_ATTACH_SHARD_ROWS="4", KYC_ATTACH_MAX_SHARDS="16")
    number = scenario.rows[0]["document_number"]  # an error's message may quote a row: it stays out of the report
    real_run_shard = attach_flow.run_shard
    broken: list[str] = []

    async def one_shard_breaks(name: str, *args: Any, **kwargs: Any) -> dict[str, int]:
        if not broken:
            broken.append(name)
            raise RuntimeError(f"row with document {number} broke the shard")
        return await real_run_shard(name, *args, **kwargs)

    monkeypatch.setattr(attach_flow, "run_shard", one_shard_breaks)
    state = _first_run_state(scenario)

    assert state.is_failed()
    with pytest.raises(RuntimeError):
        asyncio.run(state.aresult())
    assert scenario.record()["attachments"], "nothing was attached: nothing proved"
    report = read_report({"report": f"s3://{scenario.bucket}/reports/r1"})
    assert sorted(r["row_number"] for r in report) == list(range(1, len(scenario.rows) + 1))
    by_status = Counter(r["status"] for r in report)
    assert by_status["attached"] > 0
    stopped = [r for r in report if r["reason_code"] == "run_stopped"]
    assert stopped and all(r["status"] == "failed" for r in stopped)
    written = _written_summary(scenario.bucket, "r1")
    assert written["counts_add_up"] and written["rows_in"] == len(scenario.rows)
    assert written["stopped_early"] == "stopped after sending began: unexpected RuntimeError"
    assert number not in json.dumps(written) and number not in json.dumps(report)

    monkeypatch.setattr(attach_flow, "run_shard", real_run_shard)
    again = read_report(scenario.run(run_id="r2"))
    assert {r["status"] for r in again if r["status"] != "rejected"} <= {"attached", "skipped"}
    assert scenario.record()["duplicates"]["attachments"] == 0


def test_an_unexpected_error_after_every_shard_keeps_each_rows_outcome_in_the_report(
        demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.attach_flow as attach_flow

    scenario = demo_scenario(KYC_ATTACH_SHARD_ROWS="4", KYC_ATTACH_MAX_SHARDS="16")

    monkeypatch.setattr(attach_flow, "compact_after_run", _breaks)
    state = _first_run_state(scenario)

    assert state.is_failed()
    report = read_report({"report": f"s3://{scenario.bucket}/reports/r1"})
    assert len(report) == len(scenario.rows) and not [r for r in report if r["reason_code"] == "run_stopped"]
    written = _written_summary(scenario.bucket, "r1")
    assert written["by_status"]["attached"] > 0 and written["counts_add_up"]
    assert written["stopped_early"] == "stopped after sending began: unexpected RuntimeError"


def test_the_stopped_runs_report_in_hashed_mode_names_the_manifest_by_its_digest(
        demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.attach_flow as attach_flow

    scenario = demo_scenario(KYC_ATTACH_REPORT_S3_URI="hashed")
    monkeypatch.setattr(attach_flow, "compact_after_run", _breaks)
    state = _first_run_state(scenario)

    assert state.is_failed()
    written = _written_summary(scenario.bucket, "r1")
    assert written["stopped_early"] == "stopped after sending began: unexpected RuntimeError"
    assert written["manifest"].startswith(f"s3://{scenario.bucket}/hmac:")
    assert "manifests/" not in json.dumps(written)


def _breaks(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the ledger's segments could not be folded")
