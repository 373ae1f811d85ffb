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
from flows.attach_flow import attach_manifest
from flows.demo_samples import sample_jpeg, sample_pdf, sample_png
from flows.progress import PROGRESS_KEY, ProgressEvent, listen
from tests.e2e.helpers import api_env, load_world, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / "tests" / "fixtures" / "legacy"


def sample_for(key: str) -> bytes:
    """A small real file of the type the key's extension says."""
    if key.endswith(".jpg"):
        return sample_jpeg(comment=key.encode())  # unique content per file, inside the JPEG
    if key.endswith(".png"):
        return sample_png()
    return sample_pdf(key)


def stage_archive(name: str, bucket: str) -> tuple[str, str, dict[str, Any], list[dict[str, Any]]]:
    """Put an example archive, its mapping and its files on S3 (the archive's bucket renamed to ``bucket``).

    Returns (archive uri, mapping uri, world, archive rows after renaming).
    """
    import csv
    import io

    source_bucket = {"bank_a": "legacy-bank-a", "broker_b": "legacy-broker-b"}[name]
    archive = (LEGACY / name / "archive.csv").read_text().replace(f"s3://{source_bucket}/", f"s3://{bucket}/")
    mapping = (ROOT / "mappings" / f"{name}.yaml").read_text().replace(f"s3://{source_bucket}/", f"s3://{bucket}/")
    world = json.loads((LEGACY / name / "world.json").read_text())
    rows = list(csv.DictReader(io.StringIO(archive)))
    store = ObjectStore(S3Store(make_s3_client()))
    for row in rows:
        value = row.get("SCAN_URI") or f"s3://{bucket}/{row['File Path']}"
        key = value.split("/", 3)[3]
        store.write(Location(bucket, key), sample_for(key))
    store.write(Location(bucket, f"archives/{name}.csv"), archive.encode())
    store.write(Location(bucket, f"mappings/{name}.yaml"), mapping.encode())
    return f"s3://{bucket}/archives/{name}.csv", f"s3://{bucket}/mappings/{name}.yaml", world, rows


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

