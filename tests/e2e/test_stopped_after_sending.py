"""A check that fails after the run began sending: exit 3, and still a report with every row and one status each,
whose place the one line on stderr names (real S3 server, Fin sandbox, Prefect flow runs)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.errors import SetupError
from connectors.s3 import make_s3_client
from flows.commands.cli import app
from flows.commands.demo import demo_rows, demo_world
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture()
def staged(fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, int]:
    """Three customers' documents, a shard for each few rows; the manifest's uri and its row count."""
    world = demo_world(customers=3)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SHARD_ROWS="4", KYC_ATTACH_MAX_SHARDS="16")
    return put_scenario(bucket, rows, files), len(rows)


def _run_stopped(manifest: str, bucket: str, *, where: str, reason: str) -> None:
    """``kyc-attach run`` as run ``r1``: it ends with exit 3, its last line on stderr naming where its report is
    and why it stopped."""
    result = CliRunner().invoke(app, ["run", manifest, "--report-uri", f"s3://{bucket}/reports", "--run-id", "r1",
                                      "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines()[-1] == (
        f"kyc-attach: error: StoppedAfterSending: stopped after sending began ({where}): {reason}")


def test_a_shard_refused_after_others_attached_leaves_its_rows_failed_run_stopped_in_the_report(
        staged: tuple[str, int], bucket: str, fin_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.attach_flow as attach_flow

    manifest, row_count = staged
    real_run_shard = attach_flow.run_shard
    refused: list[str] = []

    async def one_shard_refused(name: str, *args: Any, **kwargs: Any) -> dict[str, int]:
        if not refused:
            refused.append(name)
            raise SetupError("ledger: the store refused a check of this shard")
        return await real_run_shard(name, *args, **kwargs)

    monkeypatch.setattr(attach_flow, "run_shard", one_shard_refused)
    _run_stopped(manifest, bucket, where=f"s3://{bucket}/reports/r1",
                 reason="ledger: the store refused a check of this shard")

    assert sandbox_record(fin_sandbox.url)["attachments"], "nothing was attached: nothing proved"
    summary = {"report": f"s3://{bucket}/reports/r1"}
    report = read_report(summary)
    assert sorted(r["row_number"] for r in report) == list(range(1, row_count + 1))
    by_status = Counter(r["status"] for r in report)
    assert by_status["attached"] > 0 and by_status["rejected"] > 0
    stopped = [r for r in report if r["reason_code"] == "run_stopped"]
    assert stopped and all(r["status"] == "failed" for r in stopped)
    sent = {f["uri"] for a in sandbox_record(fin_sandbox.url)["attachments"] for f in a["files"]}
    assert {r["uri"] for r in report if r["status"] == "attached"} <= sent
    written = json.loads(make_s3_client().get_object(Bucket=bucket, Key="reports/r1/summary.json")["Body"].read())
    assert written["counts_add_up"] and written["rows_in"] == row_count
    assert written["stopped_early"].startswith("stopped after sending began")


def test_a_report_location_that_refuses_the_report_leaves_it_in_the_work_folder(
        staged: tuple[str, int], bucket: str, fin_sandbox: Any, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    import flows.attach_flow as attach_flow
    import flows.stopped_report as stopped_report

    manifest, row_count = staged

    def refused_publish(*args: Any, **kwargs: Any) -> None:
        raise SetupError("reports/r1/rows.csv exists already and is never overwritten")

    monkeypatch.setattr(attach_flow, "publish_report", refused_publish)
    monkeypatch.setattr(stopped_report, "publish_report", refused_publish)
    kept = (tmp_path / "work" / "stopped-reports" / "r1").resolve()
    _run_stopped(manifest, bucket, where=str(kept),
                 reason="reports/r1/rows.csv exists already and is never overwritten")

    rows = (kept / "rows.csv").read_text().splitlines()
    assert len(rows) == row_count + 1
    summary = json.loads((kept / "summary.json").read_text())
    assert summary["counts_add_up"] and summary["rows_in"] == row_count
    # every shard had finished before the refusal: each row keeps the outcome it had
    assert summary["by_status"]["attached"] > 0 and "run_stopped" not in summary["by_reason"]


def test_a_check_refused_after_the_report_was_published_names_that_report(
        staged: tuple[str, int], bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import flows.attach_flow as attach_flow

    manifest, row_count = staged

    def refused_marker(*args: Any, **kwargs: Any) -> bool:
        raise SetupError("reports/_jobs: the completion marker cannot be written")

    monkeypatch.setattr(attach_flow, "mark_completed", refused_marker)
    _run_stopped(manifest, bucket, where=f"s3://{bucket}/reports/r1",
                 reason="reports/_jobs: the completion marker cannot be written")

    report = read_report({"report": f"s3://{bucket}/reports/r1"})
    assert len(report) == row_count and not [r for r in report if r["reason_code"] == "run_stopped"]
    assert not (tmp_path / "work" / "stopped-reports").exists()
