"""The migration deployment on a single file an earlier run completed: run again when a missing object was
restored or the mapping corrected."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from tests.support.legacy_archives import sample_for, stage_archive
from tests.support.scenario import api_env, load_world, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

PASSPORT = "scans/0000/passport.pdf"  # the only identifying document of its party, which also has a bill
BILL = "scans/0000/bill.pdf"


def test_migration_of_a_completed_file_with_a_missing_object_restored_attaches_it(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """operations.md: rows rejected for something outside the file (an object missing) need no edit: put the
    object in place and run the same file again. The first migration run finds a passport scan missing
    (missing_object; its party's bill then has no identifying document); rejected rows do not keep a job open,
    so it completes. The scan is restored and the migration deployment run again on the same archive.
    Found: 'was completed by an earlier run; nothing to do': the restored passport and the bill are never
    attached. Expected: the file's re-workable rejected rows are worked again (as the nightly deployment
    does), and the bill goes with its passport. Fixed (flows/migration.py): a completed single file that wants
    rework runs as --retry-failed/--include-rejected, as nightly does.
    Second finding, same test: that re-work (nightly's too) left the bill `skipped`/`not_retried` for good: its
    reason no_identifying_document is not re-workable, though it came from the missing passport. Fixed
    (connectors/report_store.failed_rows_of): no_identifying_document rows come along with any included reason."""
    from flows.migration import migration

    archive, mapping, world, _ = stage_archive("bank_a", bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    reports = f"s3://{bucket}/reports"
    store = ObjectStore(S3Store(make_s3_client()))
    make_s3_client().delete_object(Bucket=bucket, Key=PASSPORT)

    first = asyncio.run(migration(archive, reports, mapping=mapping))
    report = {r["s3_uri"].split("/", 3)[3]: r for r in read_report(first["runs"][archive])}
    assert report[PASSPORT]["reason_code"] == "missing_object"
    assert report[BILL]["reason_code"] == "no_identifying_document"

    store.write(Location(bucket, PASSPORT), sample_for(PASSPORT))
    again = asyncio.run(migration(archive, reports, mapping=mapping))
    assert list(again["runs"]) == [archive], again
    report = {r["s3_uri"].split("/", 3)[3]: r for r in read_report(again["runs"][archive])}
    assert (report[PASSPORT]["status"], report[BILL]["status"]) == ("attached", "attached"), (
        report[PASSPORT], report[BILL])


def test_migration_of_a_completed_file_with_a_corrected_mapping_runs_it_again(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """operations.md: rejected rows need a fixed archive (or mapping). The first mapping lacks the archive's
    `DL` code (driving licences rejected unknown_type: rejected rows leave the job complete). The mapping is
    corrected and the migration deployment run again on the same archive. Found: 'completed by an earlier run;
    nothing to do': the licences are never attached. (`kyc-attach run` does run it again.)"""
    from flows.migration import migration

    archive, mapping, world, _ = stage_archive("bank_a", bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    reports = f"s3://{bucket}/reports"
    store = ObjectStore(S3Store(make_s3_client()))
    loc = Location.parse(mapping)
    good = store.read(loc)
    store.write(loc, good.replace(b"        DL: DRIVERS_LICENSE\n", b""), overwrite=True)

    first = asyncio.run(migration(archive, reports, mapping=mapping))
    assert first["runs"][archive]["by_status"]["rejected"] > 3  # the archive's own 3 bad rows, and the licences

    store.write(loc, good, overwrite=True)
    again = asyncio.run(migration(archive, reports, mapping=mapping))
    assert list(again["runs"]) == [archive], again
    by_status = again["runs"][archive]["by_status"]
    assert by_status.get("attached", 0) > 0 and by_status.get("skipped", 0) > 0, by_status  # the licences now
    assert sandbox_record(fin_sandbox.url)["duplicates"]["attachments"] == 0
    # the same file through the same (corrected) mapping again: completed, nothing to do
    assert list(asyncio.run(migration(archive, reports, mapping=mapping))["runs"]) == []
