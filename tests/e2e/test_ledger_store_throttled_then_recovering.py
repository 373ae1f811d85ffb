"""A ledger store that throttles for a moment (S3's SlowDown at a hot prefix, a few answers, then healthy again)
costs a run nothing: the client's retries carry every write, every document is attached once, the index is
compacted, and the next run skips what this one attached. A store that refuses writes for good with an error no
client retries (403 AccessDenied) stops the run at once, and the stop line says so."""

from __future__ import annotations

import asyncio
import logging
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
from tests.e2e.refusing_s3_proxy import ACCESS_DENIED, Refusals
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record, valid_rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

CUSTOMERS = 6


def _stage(fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    world = demo_world(customers=CUSTOMERS)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world, {"latency": {"ms": 20, "endpoints": ["attach"]}})
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0",
            KYC_ATTACH_MAX_CONCURRENT_CUSTOMERS="4", KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")
    return put_scenario(bucket, rows, files)


def test_a_ledger_store_throttling_for_a_moment_costs_the_run_nothing(
    fin_sandbox: Any, bucket: str, proxied_s3: Refusals, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = _stage(fin_sandbox, bucket, monkeypatch, tmp_path)
    proxied_s3.prefix = f"/{bucket}/ledger/_documents/"
    proxied_s3.allowed, proxied_s3.most = 0, 3  # the first three index writes answered SlowDown, then healthy
    caplog.set_level(logging.INFO, logger="kyc_attach.ledger")

    first = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="first"))

    assert proxied_s3.refused == 3
    valid = valid_rows(read_report(first))
    assert {r["status"] for r in valid} == {"attached"}, Counter((r["status"], r["reason_code"]) for r in valid)
    assert not first.get("stopped_early")
    assert [r for r in caplog.records if "compacted" in r.getMessage()]  # the index folded at the end
    attached = len(sandbox_record(fin_sandbox.url)["attachments"])
    assert attached == 3 * CUSTOMERS

    second = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="second"))

    assert {r["status"] for r in valid_rows(read_report(second))} == {"skipped"}
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0 and len(record["attachments"]) == attached


def _deny_after_attachments(sandbox_url: str, refusals: Refusals, count: int, denied_at: list[float]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(sandbox_record(sandbox_url)["attachments"]) >= count:
            with refusals.lock:
                refusals.allowed = refusals.writes
            denied_at.append(time.monotonic())
            return
        time.sleep(0.02)


def test_a_ledger_store_denying_writes_stops_the_run_at_once_and_says_why(
    fin_sandbox: Any, bucket: str, proxied_s3: Refusals, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    manifest = _stage(fin_sandbox, bucket, monkeypatch, tmp_path)
    proxied_s3.prefix = f"/{bucket}/ledger/_documents/"
    proxied_s3.status, proxied_s3.body = 403, ACCESS_DENIED
    denied_at: list[float] = []
    watch = threading.Thread(target=_deny_after_attachments, args=(fin_sandbox.url, proxied_s3, 4, denied_at),
                             daemon=True)
    watch.start()

    result = CliRunner().invoke(app, ["run", manifest, "--report-uri", f"s3://{bucket}/reports", "--run-id", "denied",
                                      "--no-progress"])
    ended = time.monotonic()
    watch.join(timeout=5)

    assert proxied_s3.refused > 0 and denied_at
    assert result.exit_code == 1, result.output
    stop_lines = [line for line in result.stderr.splitlines() if "ledger" in line]
    assert len(stop_lines) == 1 and "stopped early:" in stop_lines[0] and "AccessDenied" in stop_lines[0], \
        result.stderr
    assert ended - denied_at[0] < 30  # a 403 is not retried: the run stops in seconds, not after minutes of back-off
    valid = valid_rows(read_report({"report": f"s3://{bucket}/reports/denied"}))
    assert Counter(r["status"] for r in valid)["failed"] > 0
    assert sandbox_record(fin_sandbox.url)["duplicates"]["attachments"] == 0
