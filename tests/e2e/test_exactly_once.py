"""Exactly once through crashes and faults, judged from the sandbox's own record."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.fin import small_request_slots
from connectors.ledger_index import partitions, read_records
from connectors.objects import ObjectStore
from connectors.s3 import Location
from flows.attach_flow import run_attach
from flows.commands.demo import CLIENT_ID, demo_rows, demo_world
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

BAD_KEYS = {"alpha2.pdf", "expired.pdf", "front-only.pdf", "not-a-pdf.pdf", "nowhere.pdf", "missing.pdf"}
DOCS_PER_CUSTOMER = 3  # demo_rows: a passport, a two-sided national id, a utility bill


def _scenario(bucket: str, customers: int, sandbox_url: str, faults: dict[str, Any] | None = None,
              parties_status: str = "INITIATED") -> tuple[list[dict[str, str]], str, dict[str, Any]]:
    world = demo_world(customers=customers)
    world["clients"] = [{"client_id": CLIENT_ID, "client_secret": "demo-secret"}]
    for customer in world["customers"]:
        for party in customer["associated_parties"]:
            party["verification_status"] = parties_status
    rows, files = demo_rows(world, bucket)
    load_world(sandbox_url, world, faults)
    return rows, put_scenario(bucket, rows, files), world


LEASE_STALE_S = 3
MAX_CONCURRENT_REQUESTS = 16  # the setting's default: a quarter as many slots for customer look-ups and attaches


def _child_env(sandbox_url: str, work: Path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env.update({
        "FIN_API_URL": sandbox_url, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": "demo-secret",
        "KYC_ATTACH_WORK_DIR": str(work), "KYC_ATTACH_RATE_LIMIT_RPS": "500", "KYC_ATTACH_SETTLE_DELAY_S": "0.05",
        # the child talks to this session's Prefect server instead of starting one of its own
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        # a killed run's lease on its customers counts until it is this old (by the store's clock): short here, so
        # each resumed run can start a few seconds after the kill
        "KYC_ATTACH_LEASE_STALE_S": str(LEASE_STALE_S),
    })
    return env


def _recorded_uploads(ledger: Path) -> set[tuple[str, str]]:
    """(customer, the name the flow gives the file at Fin) of every upload the ledger index holds (segments and
    compacted partitions)."""
    store = ObjectStore(None)
    root = Location.parse(str(ledger / "_documents"))
    return {(rec["c"], hashlib.sha256(rec["src"].encode()).hexdigest()[:16])
            for part in partitions(store, root) for rec in read_records(store, root, part) if rec["k"] == "upload"}


def _uploaded_again(recorded: set[tuple[str, str]], uploads: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The uploads among ``uploads`` (the sandbox's record) of a file the ledger had recorded already."""
    made = [(u["customer_id"], u["filename"].split(".", 1)[0]) for u in uploads]
    return [m for m in made if m in recorded]


def _unknown_requests_by_run(ledger: Path) -> Counter[str]:
    """How many requests of each run the ledger holds as unknown (their documents' last state)."""
    store = ObjectStore(None)
    root = Location.parse(str(ledger / "_documents"))
    last = {rec["id"]: rec for part in partitions(store, root) for rec in read_records(store, root, part)
            if rec["k"] == "doc"}
    return Counter(run for run, _ in {(r["run"], r["req"]) for r in last.values() if r["s"] == "unknown"})


@pytest.mark.timeout(1800)  # seven flow processes, each starting Prefect's client: minutes on a loaded 2-core machine
def test_killed_runs_resume_and_attach_every_document_exactly_once(
    fin_sandbox: Any, bucket: str, tmp_path: Path
) -> None:
    customers = 24  # enough files that the uploads-phase kills find uploads left to cut
    rows, manifest, _ = _scenario(bucket, customers, fin_sandbox.url,
                                  {"latency": {"ms": 25, "endpoints": ["upload", "attach"]}})
    env = _child_env(fin_sandbox.url, tmp_path / "work")
    # Attaches wait for their turn (a limit the API documents for attach): a kill finds most of them waiting, and a
    # request waiting for its rate token or slot has no in-flight record yet, so the next run simply sends it.
    env["KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS"] = '{"attach": 5}'
    command = [sys.executable, "-m", "flows.commands.cli", "run", manifest, "--report-uri", f"s3://{bucket}/reports"]
    rng = random.Random(20261125)
    kills: list[tuple[str, int]] = []
    for i in range(5):
        # Alternate phases; the kill lands after a random number of new uploads/attachments.
        phase = "uploads" if i % 2 == 0 else "attachments"
        before = len(sandbox_record(fin_sandbox.url)[phase])
        target = before + rng.randint(1, 4)
        recorded = _recorded_uploads(tmp_path / "work" / "ledger")
        uploads_before = len(sandbox_record(fin_sandbox.url)["uploads"])
        child = subprocess.Popen([*command, "--run-id", f"killed-{i}"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while child.poll() is None and time.monotonic() < deadline:
            if len(sandbox_record(fin_sandbox.url)[phase]) >= target:
                child.send_signal(signal.SIGKILL)
                kills.append((phase, target - before))
                break
            time.sleep(0.01)
        child.wait(timeout=120)
        # an upload the ledger recorded before this run is never made again
        assert not _uploaded_again(recorded, sandbox_record(fin_sandbox.url)["uploads"][uploads_before:])
        time.sleep(LEASE_STALE_S + 1)  # the killed run's lease goes stale before the next run starts
    assert len(kills) == 5, kills  # the run must really have been cut, not just finished

    recorded = _recorded_uploads(tmp_path / "work" / "ledger")
    uploads_before = len(sandbox_record(fin_sandbox.url)["uploads"])
    assert recorded  # the killed runs' uploads were recorded as they completed
    final = subprocess.run([*command, "--run-id", "final"], env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode in (0, 1), final.stderr[-2000:]  # 1: rows left unknown, looked at below
    assert not _uploaded_again(recorded, sandbox_record(fin_sandbox.url)["uploads"][uploads_before:])

    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0
    report = read_report({"report": f"s3://{bucket}/reports/final"})
    assert [r["row_number"] for r in report] == list(range(1, len(rows) + 1))
    valid = [r for r in report if r["s3_uri"].rsplit("/", 1)[-1] not in BAD_KEYS]
    assert {r["status"] for r in valid} <= {"attached", "skipped", "unknown"}
    # With the default settings a party still INITIATED proves nothing, so the one send a kill leaves unsettled is
    # one cut after its in-flight record and before the API read it. A request is recorded in flight only once it
    # holds one of the client's slots for small requests (and, with no 429 or 409 here, keeps it until answered),
    # so a killed run leaves at most that many; and none of their documents is at Fin.
    unknown = {(r["customer_id"], r["document_type"]) for r in valid if r["status"] == "unknown"}
    assert not unknown & {(a["customer_id"], a["type"]) for a in record["attachments"]}
    cut = _unknown_requests_by_run(tmp_path / "work" / "ledger")
    assert all(n <= small_request_slots(MAX_CONCURRENT_REQUESTS) for n in cut.values()), cut
    if unknown:
        # what a person does with them (README, "What a person must check"): not at Fin, so they are sent again
        resent = subprocess.run([*command, "--run-id", "resent", "--resend-unknown"], env=env, capture_output=True,
                                text=True, timeout=600)
        assert resent.returncode == 0, resent.stderr[-2000:]

    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0
    assert Counter(a["type"] for a in record["attachments"]) == {
        "PASSPORT": customers, "NATIONAL_ID": customers, "UTILITY_BILL": customers}


def test_unknown_only_where_the_api_cannot_settle(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Parties already past INITIATED: a lost attach response cannot be settled, so it is `unknown`."""
    _, manifest, world = _scenario(bucket, 3, fin_sandbox.url,
                                      {"commit_then_fail": {"share": 1.0, "mode": "500"}},
                                      parties_status="REVIEWING")
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0")

    summary = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))

    valid = [r for r in read_report(summary) if r["s3_uri"].rsplit("/", 1)[-1] not in BAD_KEYS]
    assert {(r["status"], r["reason_code"]) for r in valid} == {("unknown", "outcome_unknown")}
    record = sandbox_record(fin_sandbox.url)
    assert record["requests"]["attach"] == len(world["customers"])  # each sent once, never resent blindly
    assert record["duplicates"]["attachments"] == 0

    # A second run does not resend them either, unless the operator asks for it.
    again = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))
    assert again["by_status"]["unknown"] == summary["by_status"]["unknown"]
    assert sandbox_record(fin_sandbox.url)["requests"]["attach"] == len(world["customers"])


def test_failure_threshold_stops_the_run_early_and_says_why(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows, manifest, _ = _scenario(bucket, 20, fin_sandbox.url, {"errors": {"share": 1.0, "endpoints": ["attach"]}})
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_FAIL_MIN_ATTEMPTS="4", KYC_ATTACH_MAX_ATTEMPTS="2",
            KYC_ATTACH_SETTLE_DELAY_S="0", KYC_ATTACH_MAX_CONCURRENT_CUSTOMERS="2")

    summary = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))

    assert summary["stopped_early"] and "failed" in summary["stopped_early"]
    assert summary["by_reason"].get("failure_threshold", 0) > 0
    assert summary["by_status"]["attached"] == 0
    assert sum(summary["by_status"].values()) == len(rows)
    attempted = sandbox_record(fin_sandbox.url)["requests"].get("attach", 0)
    assert attempted < 20 * 2  # stopped well before trying every customer


def test_retry_failed_works_only_the_rows_that_failed(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    customers = 8
    rows, manifest, _ = _scenario(bucket, customers, fin_sandbox.url,
                                  {"seed": 3, "errors": {"share": 0.5, "statuses": [503], "endpoints": ["attach"]}})
    # A 503 on attach leaves the outcome open; trusting "still INITIATED" (the sandbox's behaviour) makes it `failed`.
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_MAX_ATTEMPTS="1", KYC_ATTACH_SETTLE_DELAY_S="0",
            KYC_ATTACH_TRUST_INITIATED_AS_NOT_APPLIED="true")
    first = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="first"))
    failed_before = {r["row_number"] for r in read_report(first) if r["status"] == "failed"}
    assert failed_before and first["by_status"]["attached"] > 0  # a mix, or the test proves nothing

    httpx.post(f"{fin_sandbox.url}/_sandbox/faults", json={}).raise_for_status()  # the API recovered
    second = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="second", retry_failed="first"))

    report = {r["row_number"]: r for r in read_report(second)}
    assert {report[n]["status"] for n in failed_before} == {"attached"}
    others = [r for n, r in report.items() if n not in failed_before and r["status"] != "rejected"]
    assert others and {(r["status"], r["reason_code"]) for r in others} == {("skipped", "not_retried")}
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0
    assert len(record["attachments"]) == DOCS_PER_CUSTOMER * customers
    assert sum(second["by_status"].values()) == len(rows)
