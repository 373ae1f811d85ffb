"""A party named by an email that two parties of the customer share is attached to neither."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flows.attach_flow import run_attach
from flows.commands.demo import demo_world
from flows.commands.demo_samples import sample_pdf
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.mark.parametrize("second_spelling", [str, str.upper], ids=["same-email", "differing-in-case"])
def test_an_email_two_parties_share_is_refused_and_an_unshared_one_matches_in_any_case(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, second_spelling: Any
) -> None:
    world = demo_world(customers=1, parties=3)
    customer = world["customers"][0]
    first, second, third = customer["associated_parties"]
    shared = "shared.owner@example.com"
    first["email"], second["email"] = shared, second_spelling(shared)
    load_world(fin_sandbox.url, world)
    rows, files = [], {}
    # by the shared email alone; by the first party's id with the shared email; by the third's email, re-cased
    named = [{"associated_party_email": shared.title()},
             {"associated_party_id": first["id"], "associated_party_email": shared},
             {"associated_party_email": third["email"].upper()}]
    for i, party in enumerate(named):
        key = f"by-email/{second_spelling.__name__}/{i}/passport.pdf"
        files[key] = sample_pdf(f"passport {i}")
        rows.append({"s3_uri": f"s3://{bucket}/{key}", "customer_id": customer["customer_id"], **party,
                     "document_type": "PASSPORT", "document_number": f"P{i}4455667", "country": "USA",
                     "issue_date": "2021-03-10", "expiry_date": "2031-03-10"})
    manifest = put_scenario(bucket, rows, files, name=f"by-email-{second_spelling.__name__}.csv")
    api_env(monkeypatch, fin_sandbox.url, tmp_path)

    summary = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))

    report = read_report(summary)
    assert [(r["status"], r["reason_code"]) for r in report] == [
        ("rejected", "ambiguous_party_email"), ("attached", None), ("attached", None)]
    assert report[0]["message"] == ("associated_party_email: 2 associated parties of this customer have it; "
                                    "name the party by associated_party_id")
    assert summary["counts_add_up"]
    record = sandbox_record(fin_sandbox.url)
    assert sorted(a["associated_party_id"] for a in record["attachments"]) == sorted([first["id"], third["id"]])
    assert record["duplicates"]["attachments"] == 0
