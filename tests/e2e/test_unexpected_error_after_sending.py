"""An error nobody foresaw, raised after the run began sending: the run still writes a report with every row and one
status each, names the error's type (never its message) in it, ends Failed, and the next run attaches nothing twice
(real S3 server, Fin sandbox, Prefect flow runs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.errors import StoppedAfterSending
from tests.e2e.helpers import report_of_a_run_stopped_after_sending, written_summary
from tests.support.scenario import DemoScenario, read_report

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _first_run_state(scenario: DemoScenario) -> Any:
    from flows.attach_flow import attach_manifest

    return asyncio.run(attach_manifest(scenario.manifest, f"s3://{scenario.bucket}/reports", run_id="r1",
                                       return_state=True))


def _state_message_in_prefect(state: Any) -> str:
    from prefect.client.orchestration import get_client

    async def read() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
        assert run.state is not None
        return str(run.state.message)

    return asyncio.run(read())


def _task_state_messages_in_prefect(state: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
        assert any(r.state is not None and r.state.is_failed() for r in runs)
        return [str(r.state.message) for r in runs if r.state is not None]

    return asyncio.run(read())


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
    with pytest.raises(StoppedAfterSending, match=r"\(s3://.*/reports/r1\): unexpected RuntimeError$"):
        asyncio.run(state.aresult())
    # the flow run's state, as Prefect keeps it, names the error's type and where the report went, never a row
    message = _state_message_in_prefect(state)
    assert "unexpected RuntimeError" in message and "reports/r1" in message and number not in message
    # nor do the shard task runs' states
    assert all(number not in m for m in _task_state_messages_in_prefect(state)), "a task run's state quotes a row"
    assert scenario.record()["attachments"], "nothing was attached: nothing proved"
    report = report_of_a_run_stopped_after_sending(scenario.bucket, "r1", len(scenario.rows))
    written = written_summary(scenario.bucket, "r1")
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
    written = written_summary(scenario.bucket, "r1")
    assert written["by_status"]["attached"] > 0 and written["counts_add_up"]
    assert written["stopped_early"] == "stopped after sending began: unexpected RuntimeError"


def test_the_stopped_runs_report_in_hashed_mode_names_the_manifest_by_its_digest(
        demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.attach_flow as attach_flow

    scenario = demo_scenario(KYC_ATTACH_REPORT_S3_URI="hashed")
    monkeypatch.setattr(attach_flow, "compact_after_run", _breaks)
    state = _first_run_state(scenario)

    assert state.is_failed()
    written = written_summary(scenario.bucket, "r1")
    assert written["stopped_early"] == "stopped after sending began: unexpected RuntimeError"
    assert written["manifest"].startswith(f"s3://{scenario.bucket}/hmac:")
    assert "manifests/" not in json.dumps(written)


def test_the_cli_names_an_unexpected_errors_type_after_sending_never_its_message(
        demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.attach_flow as attach_flow
    from flows.commands.cli import app

    scenario = demo_scenario()
    number = scenario.rows[0]["document_number"]

    def breaks_quoting_a_row(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"row with document {number} broke the fold")

    monkeypatch.setattr(attach_flow, "compact_after_run", breaks_quoting_a_row)
    result = CliRunner().invoke(app, ["run", scenario.manifest, "--report-uri", f"s3://{scenario.bucket}/reports",
                                      "--run-id", "r1", "--no-progress"])

    assert result.exit_code == 3, result.output
    assert "unexpected RuntimeError" in result.stderr and "reports/r1" in result.stderr
    assert number not in result.stderr and number not in result.stdout
    assert scenario.record()["attachments"], "nothing was attached: nothing proved"


def _breaks(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the ledger's segments could not be folded")
