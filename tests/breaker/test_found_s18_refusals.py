"""Breaker s18: refused attach requests (400/422) split per party, combined with lost answers and re-runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flows.attach_flow import run_attach
from flows.commands.demo import demo_world
from flows.commands.demo_samples import sample_pdf
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _stage(bucket: str, sandbox_url: str, customers: int, parties: int, refused_every: int,
           faults: dict[str, Any], name: str) -> tuple[list[dict[str, str]], str, set[str]]:
    """Customers with ``parties`` parties each, a passport per party; every ``refused_every``-th party refused."""
    world = demo_world(customers=customers, parties=parties)
    rows, files, refused = [], {}, set()
    for c, customer in enumerate(world["customers"]):
        for i, party in enumerate(customer["associated_parties"]):
            key = f"refusal/{c}/{i}/passport.pdf"
            files[key] = sample_pdf(f"passport {c} {i}")
            rows.append({"s3_uri": f"s3://{bucket}/{key}", "customer_id": customer["customer_id"],
                         "associated_party_id": party["id"], "document_type": "PASSPORT",
                         "document_number": f"Z{c}{i}9876543", "country": "USA", "issue_date": "2021-03-10",
                         "expiry_date": "2031-03-10"})
            if (c * parties + i) % refused_every == 0:
                refused.add(party["id"])
    name_path = faults.pop("_name_path", True)
    load_world(sandbox_url, world, {**faults, "refuse_parties": {"party_ids": sorted(refused),
                                                                 "name_path": name_path}})
    return rows, put_scenario(bucket, rows, files, name=name), refused


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name_path", [True, False], ids=["named", "unnamed"])
def test_refusals_with_lost_answers_every_row_one_status_nothing_twice(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name_path: bool,
) -> None:
    """Refused parties in most requests while attaches are committed then answered 500 or dropped, and 5xx and
    drops before any work. Every row one status; refused parties failed; nothing attached twice; the others
    attached or unknown (never failed for a neighbour's refusal); a re-run attaches nothing twice either."""
    faults = {"seed": 11, "_name_path": name_path,
              "commit_then_fail": {"share": 0.3, "mode": "either"},
              "errors": {"share": 0.15, "endpoints": ["attach"]},
              "drop": {"share": 0.1, "endpoints": ["attach"]}}
    rows, manifest, refused = _stage(bucket, fin_sandbox.url, customers=6, parties=7, refused_every=3,
                                     faults=faults, name=f"r-{name_path}.csv")
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0.05",
            KYC_ATTACH_FAIL_RATIO="1.0")

    summary = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))

    report = read_report(summary)
    assert len(report) == len(rows) and summary["counts_add_up"], summary
    bad = Counter((r["status"], r["reason_code"]) for r in report if r["associated_party_id"] in refused)
    good = Counter((r["status"], r["reason_code"]) for r in report if r["associated_party_id"] not in refused)
    assert set(bad) <= {("failed", "api_validation_failed"), ("unknown", "outcome_unknown")}, bad
    assert set(good) <= {("attached", None), ("unknown", "outcome_unknown")}, good
    assert bad[("failed", "api_validation_failed")] and good[("attached", None)], (bad, good)  # not vacuous
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0
    assert not {a["associated_party_id"] for a in record["attachments"]} & refused

    asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0
    assert not {a["associated_party_id"] for a in record["attachments"]} & refused
