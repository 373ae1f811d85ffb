"""One party's refused documents do not sink the other parties of its attach request (issue 13)."""

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

PARTIES = 6
REFUSED = 3  # a party in the middle, so halving must cut more than once to find it


def _stage(bucket: str, sandbox_url: str, name_path: bool) -> tuple[list[dict[str, str]], str, list[str]]:
    """One customer with six parties, each with a passport, in one request; the API refuses one party."""
    world = demo_world(customers=1, parties=PARTIES)
    customer = world["customers"][0]
    party_ids = [p["id"] for p in customer["associated_parties"]]
    rows, files = [], {}
    for i, pid in enumerate(party_ids):
        key = f"refusal/{i}/passport.pdf"
        files[key] = sample_pdf(f"passport {i}")
        rows.append({"s3_uri": f"s3://{bucket}/{key}", "customer_id": customer["customer_id"],
                     "associated_party_id": pid, "document_type": "PASSPORT", "document_number": f"Z{i}9876543",
                     "country": "USA", "issue_date": "2021-03-10", "expiry_date": "2031-03-10"})
    # the request's parties are sorted by id, so find which one sits in the middle of the body
    refused = sorted(party_ids)[REFUSED]
    load_world(sandbox_url, world, {"refuse_parties": {"party_ids": [refused], "name_path": name_path}})
    return rows, put_scenario(bucket, rows, files, name=f"refusal-{name_path}.csv"), [refused]


@pytest.mark.parametrize("name_path", [True, False], ids=["path-named", "nothing-named"])
def test_one_refused_party_fails_alone_and_the_others_attach_exactly_once(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name_path: bool
) -> None:
    rows, manifest, refused = _stage(bucket, fin_sandbox.url, name_path)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)

    summary = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))

    report = read_report(summary)
    assert len(report) == len(rows)
    bad = [r for r in report if r["associated_party_id"] in refused]
    good = [r for r in report if r["associated_party_id"] not in refused]
    assert [(r["status"], r["reason_code"], r["http_status"]) for r in bad] == [
        ("failed", "api_validation_failed", 400)]
    if name_path:  # the API's reason, relative to the party, with no value in it
        assert "identifying_documents[0]: document could not be verified" in bad[0]["message"]
    assert {r["status"] for r in good} == {"attached"} and len(good) == PARTIES - 1
    assert not any("9876543" in (r["message"] or "") for r in report)

    record = sandbox_record(fin_sandbox.url)
    attached = {a["associated_party_id"] for a in record["attachments"]}
    assert attached == {r["associated_party_id"] for r in good}
    assert record["duplicates"]["attachments"] == 0
    # named: the request, then the rest once; unnamed: halving takes a few more, never one per party
    assert record["requests"]["attach"] == (2 if name_path else 5)

    # A second run sends only the refused party again; the good ones are skipped from the ledger.
    again = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))
    assert {k: v for k, v in again["by_status"].items() if v} == {"skipped": PARTIES - 1, "failed": 1}
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0 and len(record["attachments"]) == PARTIES - 1


def _stage_refusals(bucket: str, sandbox_url: str, customers: int, parties: int, refused_every: int,
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
    rows, manifest, refused = _stage_refusals(bucket, fin_sandbox.url, customers=6, parties=7, refused_every=3,
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
