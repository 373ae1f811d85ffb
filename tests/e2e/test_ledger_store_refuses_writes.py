"""The ledger is the precondition of every send: when its store refuses writes, the run stops sending, says so,
and still writes its report; the next run, the store healthy again, attaches nothing twice."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.attach_flow import run_attach
from flows.commands.cli import app
from flows.commands.demo import demo_rows, demo_world
from tests.e2e.refusing_s3_proxy import Refusals
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record, valid_rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _stage(fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
           customers: int) -> tuple[list[dict[str, str]], str]:
    world = demo_world(customers=customers)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world, {"latency": {"ms": 20, "endpoints": ["attach"]}})
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0",
            KYC_ATTACH_MAX_CONCURRENT_CUSTOMERS="4", KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")
    return rows, put_scenario(bucket, rows, files)


def _refuse_after_attachments(sandbox_url: str, refusals: Refusals, count: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(sandbox_record(sandbox_url)["attachments"]) >= count:
            with refusals.lock:
                refusals.allowed = refusals.writes
            return
        time.sleep(0.02)


def test_refused_ledger_writes_stop_sending_and_the_next_run_attaches_nothing_twice(
    fin_sandbox: Any, bucket: str, proxied_s3: Refusals, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    customers = 12
    rows, manifest = _stage(fin_sandbox, bucket, monkeypatch, tmp_path, customers)
    proxied_s3.prefix = f"/{bucket}/ledger/_documents/"
    # Once a few attaches have landed, S3 answers 503 SlowDown to every index write till the end of the run.
    watch = threading.Thread(target=_refuse_after_attachments, args=(fin_sandbox.url, proxied_s3, 6), daemon=True)
    watch.start()

    result = CliRunner().invoke(app, ["run", manifest, "--report-uri", f"s3://{bucket}/reports", "--run-id", "first",
                                      "--no-progress"])
    watch.join(timeout=5)

    assert proxied_s3.refused > 0  # the store did refuse, mid-run
    assert result.exit_code == 1, result.output
    stop_lines = [line for line in result.stderr.splitlines() if "ledger" in line]
    assert len(stop_lines) == 1 and stop_lines[0].startswith("kyc-attach: stopped early:"), result.stderr
    summary = {"report": f"s3://{bucket}/reports/first"}
    first = read_report(summary)
    assert [r["row_number"] for r in first] == list(range(1, len(rows) + 1))  # every row, one status each
    by_outcome = Counter((r["status"], r["reason_code"]) for r in valid_rows(first))
    assert by_outcome[("failed", "ledger_unavailable")] > 0, by_outcome
    # rows that fail with one whose upload record was refused: the other file of its document (document_rejected),
    # the rest of its party when it was the identifying document (no_identifying_document)
    assert set(by_outcome) <= {("attached", None), ("failed", "ledger_unavailable"), ("failed", "document_rejected"),
                               ("failed", "no_identifying_document"), ("unknown", "outcome_unknown")}
    # no compaction after the refusal: each of its writes would be retried against the refusing store
    assert not [r for r in caplog.records if r.name == "kyc_attach.ledger" and "compact" in r.getMessage()]
    sent_first = len(sandbox_record(fin_sandbox.url)["attachments"])
    assert 0 < sent_first < 3 * customers  # stopped in the middle, not before the first send nor after the last

    proxied_s3.allowed = None  # the store is healthy again
    second = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="second"))

    valid = valid_rows(read_report(second))
    assert {r["status"] for r in valid} <= {"attached", "skipped"}, Counter((r["status"], r["reason_code"])
                                                                            for r in valid)
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0
    assert len(record["attachments"]) == 3 * customers
