"""After a real run (sandbox and S3 over HTTP, the Prefect flow): the index is compacted, a second run still skips
what was attached, and ``kyc-attach history`` tells each document's state changes without personal data."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors.ledger_index import read_records
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.cli import app
from tests.support.scenario import DemoScenario, put_scenario, read_report
from transforms.exactly_once import partition_of

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _history(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["history", *args])
    return result.exit_code, result.stdout


def test_history_of_a_customer_after_a_real_run_and_a_run_after_compaction_skips_everything(
    demo_scenario: Callable[..., DemoScenario], tmp_path: Path,
) -> None:
    scenario = demo_scenario(customers=2)
    first = scenario.run()
    customer = scenario.world["customers"][1]
    cid = customer["customer_id"]

    # the run compacted the partitions it wrote: no segment left, only compacted files
    # (the tenant ledger: by default under the work folder, KYC_ATTACH_WORK_DIR/ledger)
    index = [str(p) for p in (tmp_path / "work" / "ledger" / "_documents").rglob("*") if p.is_file()
             and p.parent.name != "_documents"]
    assert index and all("/compact-" in k for k in index), index

    code, out = _history("--customer", cid, "--parquet", str(tmp_path / "h.parquet"))

    assert code == 0, out
    lines = out.strip().splitlines()
    # 3 documents (passport, two-sided national id, bill), each in flight then attached, by this run
    assert [line.split()[1] for line in lines].count("in_flight") == 3
    assert [line.split()[1] for line in lines].count("attached") == 3
    assert all(f"customer={cid}" in line and f"run={first['run_id']}" in line for line in lines)
    assert all("http=200" in line for line in lines if " attached " in line)
    assert all("request=-" not in line for line in lines)
    rows = [r for r in scenario.rows if r.get("customer_id") == cid]
    for row in rows:  # no document number, no email
        for value in (row.get("document_number"), row.get("associated_party_email")):
            assert not value or value.lower() not in out.lower()
    extract = pq.read_table(tmp_path / "h.parquet").to_pylist()
    assert len(extract) == 6
    assert {s for r in extract for s in r["source_objects"]} == {r["s3_uri"] for r in rows}
    assert {r["party_id"] for r in extract} == {p["id"] for p in customer["associated_parties"][:2]}

    # by source object: the two-sided national id, by its back
    back = next(r["s3_uri"] for r in rows if r["s3_uri"].endswith("id-back.png"))
    code, by_source = _history("--source", back)
    assert code == 0
    assert len(by_source.strip().splitlines()) == 2
    key = by_source.split("document=")[1].split()[0]
    code, by_key = _history("--document", key)
    assert code == 0 and by_key == by_source
    code, _ = _history("--customer", "00000000-0000-0000-0000-000000000000")
    assert code == 1

    # a run after compaction attaches nothing again
    before = scenario.record()
    second = scenario.run()
    after = scenario.record()
    assert len(after["attachments"]) == len(before["attachments"])
    assert len(after["uploads"]) == len(before["uploads"])
    assert second["by_status"]["attached"] == 0
    assert second["by_status"].get("skipped") == first["by_status"]["attached"]
    store = ObjectStore(S3Store(make_s3_client()))
    assert pq.read_table(io.BytesIO(store.read(Location.parse(second["report"]).child("rows.parquet")))).num_rows


def test_dry_run_after_a_live_run_previews_it_from_the_ledger(
    demo_scenario: Callable[..., DemoScenario], tmp_path: Path,
) -> None:
    scenario = demo_scenario(customers=3)
    last = scenario.world["customers"][2]["customer_id"]
    files: dict[str, bytes] = {}  # the files are on S3 already
    live_rows = [r for r in scenario.rows if r.get("customer_id") != last]
    first = DemoScenario(scenario.world, live_rows, put_scenario(scenario.bucket, live_rows, files, name="live.csv"),
                         scenario.bucket, scenario.sandbox_url).run()
    assert first["by_status"]["attached"] == 2 * 4  # 4 rows of 3 documents, per customer
    # an earlier run that lost an answer: one document of customer 1 is in flight in the ledger
    store = ObjectStore(S3Store(make_s3_client()))
    root = Location.parse(str(tmp_path / "work" / "ledger" / "_documents"))  # the tenant ledger, by default
    middle = scenario.world["customers"][1]["customer_id"]
    docs = [r for r in read_records(store, root, partition_of(middle), [middle]) if r["k"] == "doc"]
    lost = {**docs[-1], "s": "in_flight", "run": "lost-answer"}
    store.write(root.child(partition_of(middle), "seg-99999999999999999999-lost.jsonl"),
                (json.dumps(lost) + "\n").encode())
    before = scenario.record()

    summary = scenario.run(dry_run=True)

    after = scenario.record()
    assert after["uploads"] == before["uploads"] and after["attachments"] == before["attachments"]
    assert summary["dry_run_preview"]["line"] == ("would attach 3 new documents, skip 5 already attached, "
                                                  "leave 1 unknown")
    report = read_report(summary)
    by_customer: dict[str, list[str]] = {}
    for row in report:
        by_customer.setdefault(row["customer_id"], []).append(f"{row['status']}/{row['reason_code']}")
    assert set(by_customer[last]) == {"skipped/dry_run"}
    assert "unknown/outcome_unknown" in by_customer[middle]
    assert by_customer[middle].count("skipped/already_attached") in (2, 3)  # the lost one had 1 or 2 rows
    first_customer = scenario.world["customers"][0]["customer_id"]
    assert by_customer[first_customer].count("skipped/already_attached") == 4
