"""One nightly deployment, many carriers: each inbox with its own mapping (and report location), as parameters."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo import demo_rows, demo_world, manifest_csv
from tests.support.scenario import api_env, load_world, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

# Carrier B's export names every column its own way; its mapping renames them back.
RENAMED = {"customer_id": "KUNDE", "associated_party_id": "PARTEI", "associated_party_email": "PARTEI_MAIL",
           "document_type": "ART", "document_number": "NUMMER", "country": "LAND", "issue_date": "AUSGESTELLT",
           "expiry_date": "GUELTIG_BIS", "side": "SEITE", "s3_uri": "DATEI", "document_date": "DATUM"}


def _renamed_csv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RENAMED.values()))
    writer.writeheader()
    writer.writerows({RENAMED[k]: v for k, v in row.items() if k in RENAMED} for row in rows)
    return buf.getvalue().encode()


def test_each_carrier_runs_with_its_own_mapping_and_report_location(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flows.nightly import Carrier, nightly

    world = demo_world(customers=2)
    rows, files = demo_rows(world, bucket)
    # rows whose file is there (a missing one would be worked again on later nights: another behaviour)
    rows = [r for r in rows if r["s3_uri"].removeprefix(f"s3://{bucket}/") in files]
    first = world["customers"][0]["customer_id"]
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    store = ObjectStore(S3Store(make_s3_client()))
    for key, data in files.items():
        store.write(Location(bucket, key), data)
    store.write(Location(bucket, "inbox-a/a.csv"), manifest_csv([r for r in rows if r["customer_id"] == first]))
    store.write(Location(bucket, "inbox-b/b.csv"), _renamed_csv([r for r in rows if r["customer_id"] != first]))
    mapping = {"description": "carrier B", "layouts": [{"name": "carrier-b", "columns": RENAMED}]}
    store.write(Location(bucket, "config/carrier_b.yaml"), yaml.safe_dump(mapping).encode())
    carriers = [Carrier(inbox=f"s3://{bucket}/inbox-a/"),
                Carrier(inbox=f"s3://{bucket}/inbox-b/", mapping=f"s3://{bucket}/config/carrier_b.yaml",
                        report_uri=f"s3://{bucket}/reports-b")]

    runs = asyncio.run(nightly(report_uri=f"s3://{bucket}/reports", carriers=carriers))["runs"]

    a, b = runs[f"s3://{bucket}/inbox-a/a.csv"], runs[f"s3://{bucket}/inbox-b/b.csv"]
    assert a["report"].startswith(f"s3://{bucket}/reports/") and b["report"].startswith(f"s3://{bucket}/reports-b/")
    assert a["by_status"]["attached"] > 0 and b["by_status"]["attached"] > 0  # B's columns were read through its map
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0
    assert {x["customer_id"] for x in record["attachments"]} == {c["customer_id"] for c in world["customers"]}

    # The next night finds both jobs complete.
    assert asyncio.run(nightly(report_uri=f"s3://{bucket}/reports", carriers=carriers))["runs"] == {}
