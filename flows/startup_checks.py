"""What ``kyc-attach run`` checks before it starts Prefect: every whole-file problem, as one line and exit 2.

Inside a flow run a ``SetupError`` still stops the run, but Prefect prints it with two tracebacks; checking
here first keeps the promise of the CLI (one line on stderr, no API call) and costs one extra read of the
manifest (about a second per million rows; an S3 manifest is downloaded once into the work folder and the
flow reuses that copy). Wiring only: the checks themselves live in ``connectors`` and ``transforms``.
"""

from __future__ import annotations

import asyncio

from connectors.errors import SetupError
from connectors.manifest import open_manifest, scan_manifest
from connectors.mapping_file import load_mapping
from connectors.objects import ObjectStore
from connectors.s3 import Location
from flows.plan import check_manifest_columns
from flows.runtime import check_api_url, fin_client, make_s3_store
from flows.settings import Settings


def check_before_run(manifest: str, report_uri: str, *, run_id: str | None, dry_run: bool,
                     mapping: str | None = None) -> int:
    """Raise ``SetupError`` for anything that would stop the run; returns the manifest's row count."""
    settings = Settings()
    if not dry_run:
        check_api_url(settings.api_url)
    needs_s3 = any(x.startswith("s3://") for x in (manifest, report_uri, mapping or ""))
    s3 = make_s3_store(settings) if needs_s3 else None
    store = ObjectStore(s3)
    report_root = Location.parse(report_uri)
    if run_id and store.exists(report_root.child(run_id, "summary.json")):
        raise SetupError(f"run id {run_id}: a report exists already under the report location")
    layouts = load_mapping(mapping, store) if mapping else None
    # An S3 manifest's local copy stays for the run that follows: its plan task reads it and then deletes it.
    found = open_manifest(manifest, s3=s3, cache_dir=settings.work_dir)
    rows = scan_manifest(check_manifest_columns(found, layouts), batch_rows=settings.batch_rows)
    if not dry_run:  # last, so a broken manifest is refused without even a token request
        asyncio.run(_check_credentials(settings))
    return rows


async def _check_credentials(settings: Settings) -> None:
    """One token request: refused credentials are a reason not to start, not a run full of failures."""
    async with fin_client(settings) as fin:
        await fin.authenticate()
