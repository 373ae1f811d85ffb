"""Setting up a scenario for a whole-flow test: a world in the sandbox, files and a manifest on S3."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow.parquet as pq

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_world, manifest_csv
from flows.commands.demo_samples import sample_pdf


def load_world(sandbox_url: str, world: dict[str, Any], faults: dict[str, Any] | None = None) -> None:
    """Replace the sandbox's world (which also empties its record) and set its faults."""
    httpx.post(f"{sandbox_url}/_sandbox/world", json=world).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/faults", json=faults or {}).raise_for_status()


def sandbox_record(sandbox_url: str) -> dict[str, Any]:
    """Everything the sandbox accepted."""
    return httpx.get(f"{sandbox_url}/_sandbox/record").json()


HOLD_UPLOADS: dict[str, Any] = {"hold": {"endpoints": ["upload"]}}


def release_held(sandbox_url: str) -> None:
    """Open the sandbox's gate: the requests the `hold` fault keeps waiting go on, and later ones pass."""
    httpx.post(f"{sandbox_url}/_sandbox/release").raise_for_status()


@dataclass
class DemoScenario:
    """A demo world loaded in the sandbox, with its files and manifest on S3."""

    world: dict[str, Any]
    rows: list[dict[str, str]]
    manifest: str  # the manifest's s3:// uri
    bucket: str
    sandbox_url: str

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Run the flow in this process over the manifest, reports under the bucket; returns its summary."""
        from flows.attach_flow import run_attach

        return asyncio.run(run_attach(self.manifest, f"s3://{self.bucket}/reports", **kwargs))

    def record(self) -> dict[str, Any]:
        """Everything the sandbox accepted so far."""
        return sandbox_record(self.sandbox_url)


def put_scenario(bucket: str, rows: list[dict[str, str]], files: dict[str, bytes], name: str = "m.csv") -> str:
    """Write the files and the manifest to S3; returns the manifest's s3:// uri."""
    store = ObjectStore(S3Store(make_s3_client()))
    for key, data in files.items():
        store.write(Location(bucket, key), data)
    store.write(Location(bucket, f"manifests/{name}"), manifest_csv(rows))
    return f"s3://{bucket}/manifests/{name}"


def api_env(monkeypatch: Any, sandbox_url: str, tmp_path: Any, **extra: str) -> None:
    """Point the run at the sandbox, with a private work folder."""
    monkeypatch.setenv("FIN_API_URL", sandbox_url)
    monkeypatch.setenv("FIN_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("FIN_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("KYC_ATTACH_RATE_LIMIT_RPS", "500")
    for k, v in extra.items():
        monkeypatch.setenv(k, v)


def read_report(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The report rows the run wrote to S3, in manifest order."""
    store = ObjectStore(S3Store(make_s3_client()))
    data = store.read(Location.parse(summary["report"]).child("rows.parquet"))
    return pq.read_table(io.BytesIO(data)).to_pylist()


NUMBER_OF_REFUSED_PARTY = "Q7654321"  # the passports' numbers start so: tests look for it where it must not be


def stage_refused_party(bucket: str, sandbox_url: str) -> tuple[str, str]:
    """Two parties of one customer with a passport each; the API refuses the first (one failed row, one attached).
    Returns the manifest's uri and the customer id."""
    world = demo_world(customers=1, parties=2)
    customer = world["customers"][0]
    parties = [p["id"] for p in customer["associated_parties"]]
    rows, files = [], {}
    for i, pid in enumerate(parties):
        files[f"end/{i}.pdf"] = sample_pdf(f"passport {i}")
        rows.append({"s3_uri": f"s3://{bucket}/end/{i}.pdf", "customer_id": customer["customer_id"],
                     "associated_party_id": pid, "document_type": "PASSPORT",
                     "document_number": f"{NUMBER_OF_REFUSED_PARTY}{i}",
                     "country": "USA", "issue_date": "2021-03-10", "expiry_date": "2031-03-10"})
    load_world(sandbox_url, world, {"refuse_parties": {"party_ids": [parties[0]], "name_path": True}})
    return put_scenario(bucket, rows, files, name="end.csv"), customer["customer_id"]


# The demo manifest's files that fail their checks, each with the reason its row is rejected.
EXPECTED_REJECTS = {
    "alpha2.pdf": "bad_country",
    "expired.pdf": "expired",
    "front-only.pdf": "missing_side",
    "not-a-pdf.pdf": "bad_file_type",
    "nowhere.pdf": "bad_uuid",
    "missing.pdf": "missing_object",
}
DEMO_BAD_KEYS = frozenset(EXPECTED_REJECTS)


def valid_rows(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report rows of the demo manifest whose files pass every check."""
    return [r for r in report if r["s3_uri"].rsplit("/", 1)[-1] not in DEMO_BAD_KEYS]
