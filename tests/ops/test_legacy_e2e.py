"""Both example legacy archives migrated through the real flow (S3 server, Fin sandbox, Prefect), with progress."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from connectors.jobs import completed_marker
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.attach_flow import attach_manifest, run_attach
from flows.progress import PROGRESS_KEY, ProgressEvent, listen
from tests.support.legacy_archives import stage_archive
from tests.support.scenario import api_env, load_world, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

@pytest.mark.parametrize(("name", "rejected"), [
    ("bank_a", {"bad_country": 1, "bad_date": 1, "unknown_type": 1}),
    ("broker_b", {"bad_country": 1, "expired": 1, "party_not_found": 1}),
])
def test_legacy_archive_migrated_through_the_flow(
    name: str, rejected: dict[str, int], fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    archive, mapping, world, rows = stage_archive(name, bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    events: list[ProgressEvent] = []

    with listen(events.append):
        state = asyncio.run(attach_manifest(archive, f"s3://{bucket}/reports", mapping=mapping, return_state=True))
    summary = state.result()

    assert summary["rows_in"] == len(rows) == sum(summary["by_status"].values())
    report = read_report(summary)
    assert Counter(r["reason_code"] for r in report if r["status"] == "rejected") == rejected
    attached = [r for r in report if r["status"] == "attached"]
    assert len(attached) == len(rows) - sum(rejected.values())
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}
    types = Counter(a["type"] for a in record["attachments"])
    if name == "bank_a":
        assert types == {"PASSPORT": 3, "DRIVERS_LICENSE": 3, "UTILITY_BILL": 3}
        # alpha-2 GB/DE/fr became alpha-3 and day/month/year dates ISO on the way to the API
        ident = [a for a in record["attachments"] if a["type"] != "UTILITY_BILL"]
        assert {a["country"] for a in ident} == {"GBR", "DEU", "FRA"}
        assert {a["issue_date"] for a in ident} == {"2021-03-14", "2022-07-01"}
    else:
        assert types == {"PASSPORT": 3, "NATIONAL_ID": 3}
        assert {a["country"] for a in record["attachments"]} == {"GBR", "DEU", "NLD"}
        assert {a["expiry_date"] for a in record["attachments"]} == {"2030-06-15", "2033-01-01"}
    # parties known only by email were resolved to ids (one GET per customer)
    party_ids = {p["id"] for c in world["customers"] for p in c["associated_parties"]}
    assert {a["associated_party_id"] for a in record["attachments"]} <= party_ids

    # progress: in-process events rise to 100 and the Prefect progress artifact ends at 100
    assert events and events[-1].final and events[-1].percent == 100.0
    assert [e.done for e in events] == sorted(e.done for e in events)
    flow_run_id = state.state_details.flow_run_id

    async def artifacts() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))

    found = {a.key: a for a in asyncio.run(artifacts())}
    assert float(found[PROGRESS_KEY].data) == 100.0
    markdown = str(found["kyc-attach-report"].data)
    assert "429" in markdown and "| attached |" in markdown and "slowest s" in markdown
    # rejected rows are settled (only failed or unknown rows keep a job open), so the job is complete
    assert ObjectStore(S3Store(make_s3_client())).exists(completed_marker(f"s3://{bucket}/reports", summary["job_id"]))



def test_german_carrier_archive_migrates_with_no_converter(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """cp1252, ';', German names and kinds, countries as German names, DD.MM.YYYY, parties by e-mail only, and
    front and back images in two columns of one row: through `kyc-attach run --mapping`, nothing converted first."""
    from typer.testing import CliRunner

    from flows.commands.cli import app

    archive, mapping, world, rows = stage_archive("carrier_c", bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)

    result = CliRunner().invoke(app, ["run", archive, "--report-uri", f"s3://{bucket}/reports", "--mapping", mapping,
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    images = sum(1 for r in rows for c in ("Bild Vorderseite", "Bild Rückseite") if r[c])
    assert summary["rows_in"] == images == sum(summary["by_status"].values()) == 14
    report = read_report(summary)
    rejected = {r["row_number"]: r for r in report if r["status"] == "rejected"}
    # the undated passport ("unbefristet"): the message names the mapping's format, not only YYYY-MM-DD
    assert [r["reason_code"] for r in rejected.values()] == ["bad_date"]
    assert "%d.%m.%Y" in next(iter(rejected.values()))["message"]
    # carry_columns: every report row names the archive row it came from (both images of a row: the same id)
    images_of = {r["Satz-ID"]: sum(1 for c in ("Bild Vorderseite", "Bild Rückseite") if r[c]) for r in rows}
    assert Counter(r["Satz-ID"] for r in report) == images_of
    undated = [r["Satz-ID"] for r in rows if r["Gültig bis"] == "unbefristet"]
    assert [r["Satz-ID"] for r in rejected.values()] == undated
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}
    assert Counter(a["type"] for a in record["attachments"]) == {
        "PASSPORT": 2, "NATIONAL_ID": 2, "DRIVERS_LICENSE": 1, "RESIDENCE_PERMIT": 1, "UTILITY_BILL": 3}
    ident = [a for a in record["attachments"] if a["category"] == "identifying"]
    assert {a["country"] for a in ident} == {"DEU", "AUT", "FRA"}
    assert {a["issue_date"] for a in ident} >= {"2021-03-15", "2022-07-01"}
    for a in ident:  # one source row, one document: its two images travel together with their sides
        sides = sorted(f.get("side") or "" for f in a["files"])
        assert sides == (["FRONT"] if a["type"] == "PASSPORT" else ["BACK", "FRONT"]), a["type"]


def test_a_two_file_archive_s_report_joins_back_to_its_lines_and_can_hide_its_keys(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Front and back images in one archive row make two report rows: each names the archive and the row it came
    from, and the document id the mapping made for that row; with hashed keys neither a file's key nor the
    archive's reaches the report, only their digests keyed by the ledger's secret."""
    import csv
    import io

    from transforms.report import hashed_s3_uri

    archive, mapping, world, rows = stage_archive("carrier_c", bucket)
    mapping_text = ObjectStore(S3Store(make_s3_client())).read(Location.parse(mapping)).decode()
    without_carry = mapping.replace(".yaml", "-plain.yaml")  # the join must not lean on the archive's own ids
    ObjectStore(S3Store(make_s3_client())).write(Location.parse(without_carry),
                                                 mapping_text.replace("carry_columns: [Satz-ID]", "").encode())
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_REPORT_S3_URI="hashed",
            KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")

    summary = asyncio.run(run_attach(archive, f"s3://{bucket}/reports", mapping=without_carry))

    report = read_report(summary)
    # what an operator holding the ledger's secret does to find an archive's or a file's rows
    secret = bytes.fromhex(make_s3_client().get_object(
        Bucket=bucket, Key="ledger/_documents/_details_secret")["Body"].read().decode())
    assert "Satz-ID" not in report[0]
    assert len(report) > len(rows)  # the split: row_number counts file rows, not archive rows
    for line in report:
        assert line["source_file"] == hashed_s3_uri(archive, secret)
        source = rows[line["source_row"] - 1]
        assert line["document_id"] == f"src-{line['source_row']}"
        column = "Bild Rückseite" if line["side"] == "BACK" else "Bild Vorderseite"
        assert line["s3_uri"] == hashed_s3_uri(f"s3://{bucket}/{source[column]}", secret), line["row_number"]
    assert sorted(r["source_row"] for r in report) == sorted(
        i for i, r in enumerate(rows, start=1) for c in ("Bild Vorderseite", "Bild Rückseite") if r[c])
    csv_text = make_s3_client().get_object(Bucket=bucket, Key=f"reports/{summary['run_id']}/rows.csv")["Body"].read()
    header = next(csv.reader(io.StringIO(csv_text.decode())))
    assert header[-3:] == ["source_file", "source_row", "document_id"]
    for plain in (b"akten/", b"archives/carrier_c"):
        assert plain not in csv_text and plain not in json.dumps(report, default=str).encode()


def test_migration_of_a_single_file_completed_before_is_skipped(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """Re-running the migration deployment on one archive file resumes it like a prefix of parts: a completed job
    is not run again (no new report, no API call); a dry run still runs, and a changed file is a new job."""
    from flows.migration import migration

    archive, mapping, world, _ = stage_archive("bank_a", bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    reports = f"s3://{bucket}/reports"

    first = asyncio.run(migration(archive, reports, mapping=mapping))
    assert list(first["runs"]) == [archive]
    requests = sandbox_record(fin_sandbox.url)["requests"]

    again = asyncio.run(migration(archive, reports, mapping=mapping))
    assert again["runs"] == {} and again["errors"] == {}
    assert sandbox_record(fin_sandbox.url)["requests"] == requests
    dry = asyncio.run(migration(archive, reports, mapping=mapping, dry_run=True))
    assert list(dry["runs"]) == [archive]

    store = ObjectStore(S3Store(make_s3_client()))
    loc = Location.parse(archive)
    store.write(loc, store.read(loc) + b"\n", overwrite=True)  # new content: a new job
    changed = asyncio.run(migration(archive, reports, mapping=mapping))
    assert list(changed["runs"]) == [archive]
