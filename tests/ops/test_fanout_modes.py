"""Dry run, ``--retry-failed`` and ``--resend-unknown`` through fan-out: shard runs on two real process workers.

The same scenarios as the single-process tests (tests/e2e/test_attach_flow.py, test_exactly_once.py), with faults
injected in the sandbox, judged from the sandbox's own record and the report. Small manifests, two shards, one
Prefect server and two workers for the whole session (``two_workers``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.support.fanout_world import LIMIT, FanOutWorld
from connectors.objects import ObjectStore
from connectors.rate_share import rate_tag
from connectors.s3 import Location, S3Store, make_s3_client
from tests.ops.fanout_helpers import fan_out_env, report_rows
from tests.support.scenario import DemoScenario, load_world, read_report

pytestmark = [pytest.mark.slow]

DOCS_PER_CUSTOMER = 3  # demo_rows: a passport, a two-sided national id, a utility bill
SHARD_ROWS = "18"  # demo_rows of 8 customers (38 rows) plan into two shards


def _stage(demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
           customers: int = 8, faults: dict[str, Any] | None = None) -> DemoScenario:
    """A demo scenario (tests/e2e) whose run fans out in two shards to the session's workers."""
    scenario = demo_scenario(customers=customers, faults=faults)
    fan_out_env(monkeypatch, scenario.sandbox_url, tmp_path, scenario.bucket, KYC_ATTACH_SHARD_ROWS=SHARD_ROWS)
    return scenario


def _valid(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that reached the API stage (demo_rows makes a few bad on purpose)."""
    return [r for r in report if r["status"] != "rejected"]


def _payloads(summary: dict[str, Any]) -> dict[str, list[str]]:
    """The dry run's payload files in the report: their lines (sorted) by file name."""
    store = ObjectStore(S3Store(make_s3_client()))
    found = store.list(Location.parse(summary["report"]).child("payloads"))
    return {loc.key.rsplit("/", 1)[-1]: sorted(store.read(loc).decode().splitlines()) for loc in found}


def _scratch_left(two_workers: FanOutWorld) -> list[Path]:
    """Files the shard runs left in the workers' work folders (the shards' rows are personal data)."""
    return [p for d in two_workers.worker_dirs if (d / "shards").exists() for p in (d / "shards").rglob("*")
            if p.is_file()]


def _clear_faults(scenario: DemoScenario) -> None:
    httpx.post(f"{scenario.sandbox_url}/_sandbox/faults", json={}).raise_for_status()  # the API recovered


def test_fanned_out_dry_run_only_reads_customers_and_reports_every_row_with_payloads(
    two_workers: FanOutWorld, demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    s = _stage(demo_scenario, monkeypatch, tmp_path)
    with monkeypatch.context() as one_process:  # the reference
        one_process.delenv("KYC_ATTACH_SHARD_DEPLOYMENT")
        single = two_workers.run(s.manifest, f"s3://{s.bucket}/single", dry_run=True)

    fanned = two_workers.run(s.manifest, f"s3://{s.bucket}/fanned", run_id="dry", dry_run=True)

    record = s.record()
    assert set(record["requests"]) <= {"token", "customer"}  # parties known by email looked up, nothing sent
    assert record["uploads"] == [] and record["attachments"] == []
    assert fanned["dry_run"] is True and fanned["shards"] == single["shards"] >= 2
    assert len(two_workers.shard_runs("dry")) == fanned["shards"]  # really fanned out
    # their look-ups share the API rate as a live run's requests do
    assert all(rate_tag(LIMIT) in r.tags for r in two_workers.shard_runs("dry"))
    assert sum(fanned["by_status"].values()) == fanned["rows_in"] == len(s.rows)
    assert report_rows(fanned) == report_rows(single)
    report = read_report(fanned)
    assert [r["row_number"] for r in report] == list(range(1, len(s.rows) + 1))
    assert {(r["status"], r["reason_code"]) for r in _valid(report)} == {("skipped", "dry_run")}

    # the would-be payloads came home from the shard runs into the report: one file per shard, one attach
    # request per customer, the same as one process wrote, document numbers masked
    payloads = _payloads(fanned)
    assert payloads == _payloads(single)
    assert len(payloads) == fanned["shards"]
    lines = [line for file in payloads.values() for line in file]
    assert len(lines) == len(s.world["customers"])
    numbers = {r["document_number"] for r in s.rows if r.get("document_number")}
    assert sum(n in line for n in numbers for line in lines) == 0
    assert _scratch_left(two_workers) == []

    # the same run id under another report location (another job, another work area) gets shard runs of its
    # own: it must not be handed the runs above, whose results live elsewhere
    monkeypatch.setenv("KYC_ATTACH_WORK_URI", f"s3://{s.bucket}/work-2")
    again = two_workers.run(s.manifest, f"s3://{s.bucket}/elsewhere", run_id="dry", dry_run=True)
    assert report_rows(again) == report_rows(fanned)
    assert len(two_workers.shard_runs("dry")) == 2 * fanned["shards"]


def test_fanned_out_retry_failed_attaches_only_the_rows_that_failed(
    two_workers: FanOutWorld, demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    customers = 8
    # seeded: the n-th attach request meets the same fate whichever shard run sends it, so a mix is certain
    s = _stage(demo_scenario, monkeypatch, tmp_path, customers,
               {"seed": 3, "errors": {"share": 0.5, "statuses": [503], "endpoints": ["attach"]}})
    reports = f"s3://{s.bucket}/reports"
    # shard runs read their settings on the worker; a 503 on attach leaves the outcome open, and trusting
    # "still INITIATED" (the sandbox's behaviour) makes it `failed` rather than `unknown`
    with two_workers.shard_env(KYC_ATTACH_MAX_ATTEMPTS="1", KYC_ATTACH_TRUST_INITIATED_AS_NOT_APPLIED="true"):
        first = two_workers.run(s.manifest, reports, run_id="retry-1")
    failed_before = {r["row_number"] for r in read_report(first) if r["status"] == "failed"}
    assert failed_before and first["by_status"]["attached"] > 0  # a mix, or the test proves nothing
    assert first["shards"] >= 2

    _clear_faults(s)
    second = two_workers.run(s.manifest, reports, run_id="retry-2", retry_failed="retry-1")

    runs = two_workers.shard_runs("retry-2")
    assert len(runs) == second["shards"]
    assert {r.parameters["job"]["retry_failed_report"] for r in runs} == {f"{reports}/retry-1"}
    report = {r["row_number"]: r for r in read_report(second)}
    assert {report[n]["status"] for n in failed_before} == {"attached"}
    others = [r for n, r in report.items() if n not in failed_before and r["status"] != "rejected"]
    assert others and {(r["status"], r["reason_code"]) for r in others} == {("skipped", "not_retried")}
    assert sum(second["by_status"].values()) == len(s.rows)
    record = s.record()
    assert record["duplicates"]["attachments"] == 0
    assert len(record["attachments"]) == DOCS_PER_CUSTOMER * customers
    assert _scratch_left(two_workers) == []


def test_fanned_out_unknown_attaches_are_resent_only_with_resend_unknown(
    two_workers: FanOutWorld, demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Parties already past INITIATED and every attach's connection dropped: the outcome cannot be settled."""
    customers = 8
    s = _stage(demo_scenario, monkeypatch, tmp_path, customers)
    for customer in s.world["customers"]:
        for party in customer["associated_parties"]:
            party["verification_status"] = "REVIEWING"
    load_world(s.sandbox_url, s.world, {"drop": {"share": 1.0, "endpoints": ["attach"]}})
    reports = f"s3://{s.bucket}/reports"

    first = two_workers.run(s.manifest, reports, run_id="unknown-1")
    assert first["shards"] >= 2
    assert {(r["status"], r["reason_code"]) for r in _valid(read_report(first))} == {("unknown", "outcome_unknown")}
    record = s.record()
    assert record["requests"]["attach"] == customers  # each sent once, never resent blindly
    assert record["attachments"] == []  # dropped before the sandbox did anything

    # the API is well again; without the option nothing is resent
    _clear_faults(s)
    second = two_workers.run(s.manifest, reports, run_id="unknown-2")
    assert second["by_status"]["unknown"] == first["by_status"]["unknown"]
    assert s.record()["requests"]["attach"] == customers

    third = two_workers.run(s.manifest, reports, run_id="unknown-3", resend_unknown=True)

    assert {r["status"] for r in _valid(read_report(third))} == {"attached"}
    assert sum(third["by_status"].values()) == len(s.rows)
    record = s.record()
    assert record["requests"]["attach"] == 2 * customers
    assert record["duplicates"]["attachments"] == 0
    assert Counter(a["type"] for a in record["attachments"]) == {
        "PASSPORT": customers, "NATIONAL_ID": customers, "UTILITY_BILL": customers}
    assert _scratch_left(two_workers) == []
