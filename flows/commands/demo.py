"""``kyc-attach demo``: the whole flow on sample data, with everything it needs started on loopback.

It starts an S3 server and the Fin sandbox, writes sample documents and a manifest (a few rows are bad
on purpose), runs the real flow, prints the summary and stops what it started.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import uuid
from pathlib import Path
from typing import Any

from connectors.local_s3 import local_s3_server
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo_samples import sample_jpeg, sample_pdf, sample_png
from sandbox.app import create_app
from sandbox.server import SandboxServer
from sandbox.world import World

BUCKET = "kyc-demo"
CLIENT_ID, CLIENT_SECRET = "demo", "demo-secret"


def demo_world(customers: int = 3, parties: int = 2) -> dict[str, Any]:
    """A world of business customers, each with a few parties (ids stable per name, for readable demos)."""
    out = []
    for c in range(customers):
        cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kyc-demo/customer/{c}"))
        out.append({
            "customer_id": cid, "type": "BUSINESS",
            "associated_parties": [
                {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cid}/party/{p}")),
                 "email": f"party{p}.customer{c}@example.com", "ownership_percent": 100 // parties}
                for p in range(parties)
            ],
        })
    return {"clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}], "customers": out}


def demo_rows(world: dict[str, Any], bucket: str = BUCKET) -> tuple[list[dict[str, str]], dict[str, bytes]]:
    """Manifest rows and the files they point at: good documents of each kind, and some bad rows."""
    rows: list[dict[str, str]] = []
    files: dict[str, bytes] = {}

    def add(key: str, data: bytes, **row: str) -> None:
        files[key] = data
        rows.append({"s3_uri": f"s3://{bucket}/{key}", **row})

    for c, customer in enumerate(world["customers"]):
        cid = customer["customer_id"]
        p0, p1 = customer["associated_parties"][:2]
        ident = {"country": "USA", "issue_date": "2021-03-10", "expiry_date": "2031-03-10"}
        add(f"docs/{c}/passport.pdf", sample_pdf(f"passport {c}"), customer_id=cid, associated_party_id=p0["id"],
            document_type="PASSPORT", document_number=f"P{c}1234567", **ident)
        add(f"docs/{c}/id-front.jpg", sample_jpeg(), customer_id=cid, associated_party_email=p1["email"],
            document_type="NATIONAL_ID", document_number=f"N{c}7654321", side="FRONT", **ident)
        add(f"docs/{c}/id-back.png", sample_png(), customer_id=cid, associated_party_email=p1["email"],
            document_type="NATIONAL_ID", document_number=f"N{c}7654321", side="BACK", **ident)
        add(f"docs/{c}/bill.pdf", sample_pdf(f"bill {c}"), customer_id=cid, associated_party_id=p1["id"],
            document_type="UTILITY_BILL")
    cid = world["customers"][0]["customer_id"]
    pid = world["customers"][0]["associated_parties"][0]["id"]
    # Bad on purpose: each is reported `rejected` with its reason, and the rest goes on.
    add("bad/alpha2.pdf", sample_pdf("x"), customer_id=cid, associated_party_id=pid, document_type="PASSPORT",
        document_number="X1", country="US", issue_date="2020-01-01", expiry_date="2030-01-01")
    add("bad/expired.pdf", sample_pdf("y"), customer_id=cid, associated_party_id=pid, document_type="PASSPORT",
        document_number="X2", country="USA", issue_date="2010-01-01", expiry_date="2020-01-01")
    add("bad/front-only.pdf", sample_pdf("z"), customer_id=cid, associated_party_id=pid,
        document_type="DRIVERS_LICENSE", document_number="X3", country="USA", issue_date="2020-01-01",
        expiry_date="2030-01-01", side="FRONT")
    add("bad/not-a-pdf.pdf", b"this is plain text, whatever the extension says\n" * 10, customer_id=cid,
        associated_party_id=pid, document_type="BANK_STATEMENT")
    rows.append({"s3_uri": f"s3://{bucket}/bad/nowhere.pdf", "customer_id": "not-a-uuid",
                 "associated_party_id": pid, "document_type": "PASSPORT"})
    rows.append({"s3_uri": f"s3://{bucket}/bad/missing.pdf", "customer_id": cid, "associated_party_id": pid,
                 "document_type": "INSURANCE_STATEMENT"})
    return rows, files


def manifest_csv(rows: list[dict[str, str]]) -> bytes:
    """Rows as a canonical CSV manifest."""
    from transforms.columns import CANONICAL_COLUMNS

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CANONICAL_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def run_demo(keep: Path | None = None) -> dict[str, Any]:
    """Start the S3 server and the sandbox, seed them, run the flow, return the summary.

    The S3 server lives only as long as the demo, so the report is also copied to ``keep``
    (default ``.kyc-attach/demo-reports/<run id>/``) for reading afterwards.
    """
    from flows.attach_flow import run_attach

    world = demo_world()
    rows, files = demo_rows(world)
    with local_s3_server(), SandboxServer(create_app(World.model_validate(world), admin=True)) as fin:
        client = make_s3_client()
        client.create_bucket(Bucket=BUCKET)
        store = ObjectStore(S3Store(client))
        for key, data in files.items():
            store.write(Location(BUCKET, key), data)
        store.write(Location(BUCKET, "manifests/demo.csv"), manifest_csv(rows), content_type="text/csv")
        # The demo's Fin tenant (a sandbox on a new port) and its S3 server live only as long as the demo: so does
        # its ledger, kept in the demo's bucket. A ledger of its own, too, so a demo never touches a real one.
        os.environ.update({"FIN_API_URL": fin.url, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET,
                           "KYC_ATTACH_LEDGER_URI": f"s3://{BUCKET}/ledger"})
        summary = asyncio.run(run_attach(f"s3://{BUCKET}/manifests/demo.csv", f"s3://{BUCKET}/reports"))
        keep = keep or Path(".kyc-attach") / "demo-reports" / summary["run_id"]
        keep.mkdir(parents=True, exist_ok=True)
        for loc in store.list(Location.parse(summary["report"])):
            (keep / Path(loc.key).name).write_bytes(store.read(loc))
        summary["report_copy"] = str(keep)
        summary["report_page"] = str((keep / "report.html").resolve())
    return summary

