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
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, manifest_csv


def load_world(sandbox_url: str, world: dict[str, Any], faults: dict[str, Any] | None = None) -> None:
    """Replace the sandbox's world (which also empties its record) and set its faults."""
    httpx.post(f"{sandbox_url}/_sandbox/world", json=world).raise_for_status()
    httpx.post(f"{sandbox_url}/_sandbox/faults", json=faults or {}).raise_for_status()


def sandbox_record(sandbox_url: str) -> dict[str, Any]:
    """Everything the sandbox accepted."""
    return httpx.get(f"{sandbox_url}/_sandbox/record").json()


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
        from flows.attach_flow import attach_manifest

        return asyncio.run(attach_manifest(self.manifest, f"s3://{self.bucket}/reports", **kwargs))

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


# The demo manifest's files that fail their checks (rejected or failed before any attach).
DEMO_BAD_KEYS = frozenset({"alpha2.pdf", "expired.pdf", "front-only.pdf", "not-a-pdf.pdf", "nowhere.pdf",
                           "missing.pdf"})


def valid_rows(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report rows of the demo manifest whose files pass every check."""
    return [r for r in report if r["s3_uri"].rsplit("/", 1)[-1] not in DEMO_BAD_KEYS]
