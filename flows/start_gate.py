"""The start-up gate of ``kyc-attach run``: everything that would stop the run, checked before any upload.

Every failure is a ``SetupError``: one line on stderr and exit 2, no traceback, nothing sent. In order:
settings parse; run ids; the API URL (no user info; plain http only on loopback); the report location can be
read and the run id is free; the tenant ledger (no lifecycle rule expires it, no old ledger under the report
location is left unadopted, a stamp names this API and client id) and no other run holds its lease; the
``--retry-failed`` run has a report; the mapping and the manifest read (whole-file problems); the client
credentials (one token request); and last the claim of the run id, a marker written under
``REPORT_PREFIX/RUN_ID/`` that proves the report location takes our writes.

The claim comes last so a run refused for a broken manifest or bad credentials leaves nothing behind and
its run id can be used again. An S3 manifest is copied into a start-up folder of this process that goes
when the gate ends, however it ends; the flow downloads its own copy (one more read of the manifest, against
a copy of personal data left on disk by a refused or killed start). Wiring only: the checks live in
``connectors`` and ``transforms``.

Whether another run holds the lease of the same customers is known only once the flow has planned: the flow
refuses then (exit 2 too).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from connectors.errors import SetupError
from connectors.jobs import checked_rework
from connectors.manifest import count_rows, open_manifest
from connectors.mapping_file import load_mapping
from connectors.report_store import check_report_exists, check_same_job
from connectors.run_claim import check_run_id_free, claim_run, error_reason, new_claim_token
from connectors.run_ids import checked_run_id, new_run_id
from connectors.s3 import Location
from connectors.startup_scratch import startup_folder
from flows.ledger_gate import open_ledger
from flows.plan import require_columns
from flows.runtime import check_api_url, fin_client
from flows.settings import Settings, load_settings
from flows.stores import make_store


@dataclass(frozen=True)
class ClearedRun:
    """What the gate settled for the run that follows: its id, its claim and the manifest's row count."""

    run_id: str
    claim_token: str
    rows: int


def check_before_run(manifest: str, report_uri: str, *, run_id: str | None, dry_run: bool,
                     mapping: str | None = None, retry_failed: str | None = None,
                     include_rejected: list[str] | None = None) -> ClearedRun:
    """Raise ``SetupError`` for anything that would stop the run; else claim the run id and say what was settled.

    Without ``run_id`` one is made here, so the CLI hands the flow the id it claimed.
    """
    settings = load_settings()
    run_id = checked_run_id(run_id, option="--run-id") if run_id is not None else new_run_id()
    if retry_failed is not None:
        checked_run_id(retry_failed, option="--retry-failed")
    checked_rework(include_rejected, retry_failed)
    check_api_url(settings.api_url)
    if not dry_run:
        settings.require_api_credentials()
    # Source documents are on S3 whatever the other locations: a block named for a role is read here, so a flow
    # is never started (the run id claimed) only to refuse it.
    needs_s3 = any(x.startswith("s3://") for x in (manifest, report_uri, mapping or "", settings.ledger_uri or "")) \
        or any(getattr(settings, f"aws_credentials_block_{role}") for role in ("documents", "manifest", "report"))
    store = make_store(settings, s3=needs_s3)
    report_root = Location.parse(report_uri)
    run_prefix = report_root.child(run_id)
    _reading_reports(lambda: check_run_id_free(store, run_prefix, run_id=run_id), report_root)
    _, warnings = open_ledger(settings, store, report_root, dry_run=dry_run)
    for warning in warnings:
        print(f"kyc-attach: warning: {warning}", file=sys.stderr)
    if retry_failed is not None:
        _reading_reports(lambda: check_report_exists(store, report_root.child(retry_failed)), report_root)
    layouts = load_mapping(mapping, store) if mapping else None
    with startup_folder(settings.work_dir) as scratch:  # removed however the gate ends, the copy with it
        found = open_manifest(manifest, store=store.manifests(), cache_dir=scratch)
        rows = count_rows(require_columns(found, layouts), batch_rows=settings.batch_rows)
        if retry_failed is not None:
            check_same_job(store, report_root.child(retry_failed), found.job_id)
        # After the manifest, so a broken file is refused without even a token request; a dry run with credentials
        # uses them to look parties up.
        if not dry_run or settings.has_credentials():
            asyncio.run(_check_credentials(settings))
        if settings.shard_deployment:
            from flows.fanout import check_fan_out

            asyncio.run(check_fan_out(settings, report_root))
        token = new_claim_token()
        claim_run(store, run_prefix, run_id=run_id, token=token, started_at=datetime.now(UTC).isoformat())
    return ClearedRun(run_id, token, rows)


def _reading_reports(check: Callable[[], object], report_root: Location, *, what: str = "report location") -> None:
    """Run a read-only check of the report location (or another place: ``what``); S3 refusing the read (no
    bucket, no access) is a ``SetupError`` naming the error code."""
    try:
        check()
    except (ClientError, BotoCoreError) as exc:
        raise SetupError(f"{what} {report_root}: cannot be read ({error_reason(exc)})") from None


async def _check_credentials(settings: Settings) -> None:
    """One token request: refused credentials are a reason not to start, not a run full of failures."""
    async with fin_client(settings) as fin:
        await fin.authenticate()
