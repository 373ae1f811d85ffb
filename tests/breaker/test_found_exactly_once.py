"""Breaker: exactly-once holes found by running the CLI the way operators do (real S3, sandbox, Prefect)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo import CLIENT_ID, demo_rows, demo_world
from tests.support.scenario import load_world, put_scenario, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _child_env(sandbox_url: str, work: Path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env.update({
        "FIN_API_URL": sandbox_url, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": "demo-secret",
        "KYC_ATTACH_WORK_DIR": str(work), "KYC_ATTACH_RATE_LIMIT_RPS": "500", "KYC_ATTACH_SETTLE_DELAY_S": "0.05",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    })
    return env


def test_two_overlapping_runs_under_one_report_location_do_not_both_attach(
    fin_sandbox: Any, bucket: str, tmp_path: Path
) -> None:
    """A manifest copied to a second key (or the nightly and a hand run of the same export) run at the same
    time under one report location. README: a document is attached at most once under one report location,
    whatever manifest carries it. Found: both runs attach everything (each reports `attached`), 12 of 12
    documents twice at Fin. Uploads are slowed a little (1.5 s, a big scan) so the two runs overlap."""
    world = demo_world(customers=4)
    rows, files = demo_rows(world, bucket)
    # uploads of 8 s: the first run is still working when the second (a new process: seconds to start) looks
    load_world(fin_sandbox.url, world, {"latency": {"distribution": "fixed", "ms": 8000, "endpoints": ["upload"]}})
    manifest = put_scenario(bucket, rows, files)
    make_s3_client().copy_object(Bucket=bucket, Key="manifests/copy.csv",
                                 CopySource={"Bucket": bucket, "Key": "manifests/m.csv"})
    env = {**_child_env(fin_sandbox.url, tmp_path / "work"), "KYC_ATTACH_LEDGER_URI": f"s3://{bucket}/ledger"}
    base = [sys.executable, "-m", "flows.commands.cli", "run", "--report-uri", f"s3://{bucket}/reports",
            "--no-progress"]
    first = subprocess.Popen([*base, manifest, "--run-id", "one"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    # the second starts once the first holds its lease (a fixed second was too short on a fast machine: the
    # first had finished, and the second, rightly, ran and skipped everything)
    leases = Location(bucket, "ledger/_lease/partitions")  # the lease lives with the tenant ledger
    store = ObjectStore(S3Store(make_s3_client()))
    deadline = time.monotonic() + 120
    while not store.list(leases) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    second = subprocess.run([*base, f"s3://{bucket}/manifests/copy.csv", "--run-id", "two"], env=env,
                            capture_output=True, text=True, timeout=240)
    first.communicate(timeout=240)
    # fixed: the second run sees the first one's lease and does not start (one line, exit 2); the first finishes
    assert first.returncode == 0
    assert second.returncode == 2, second.stderr[-2000:]
    assert "run one is working on customers of this manifest" in second.stderr

    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"]["attachments"] == 0, (
        f"{record['duplicates']['attachments']} documents attached twice by two overlapping runs")


def test_archive_copied_to_a_new_prefix_with_a_multipart_copy_is_attached_again(
    demo_scenario: Any, bucket: str
) -> None:
    """The identity of a file is its ETag (README), and the docstring of `document_key` promises that the same
    content under another key is the same document. An operator moves the archive to a new prefix with
    `aws s3 cp --recursive` / boto3's managed `copy` (multipart above 8 MB, so a different `md5-N` ETag for the
    same bytes) and tomorrow's export points at the new keys. Found: every scan above 8 MB (common for colour
    PDFs) is a 'new document' and is attached a second time."""
    import asyncio

    from boto3.s3.transfer import TransferConfig

    from flows.attach_flow import run_attach
    from flows.commands.demo import manifest_csv

    scenario = demo_scenario(customers=1)
    s3 = make_s3_client()
    big = b"%PDF-1.4\n%" + b"0" * (9 * 1024 * 1024) + b"\n%%EOF\n"  # a 9 MiB scan, valid to the structure check
    row = next(r for r in scenario.rows if r["s3_uri"].endswith("/docs/0/passport.pdf"))
    s3.put_object(Bucket=bucket, Key="docs/0/passport.pdf", Body=big)
    s3.put_object(Bucket=bucket, Key="manifests/one.csv", Body=manifest_csv([row]))
    first = asyncio.run(run_attach(f"s3://{bucket}/manifests/one.csv", f"s3://{bucket}/reports", run_id="n1"))
    assert first["by_status"]["attached"] == 1

    s3.copy({"Bucket": bucket, "Key": "docs/0/passport.pdf"}, bucket, "moved/0/passport.pdf",
            Config=TransferConfig(multipart_threshold=8 * 1024 * 1024))
    moved = {**row, "s3_uri": f"s3://{bucket}/moved/0/passport.pdf"}
    s3.put_object(Bucket=bucket, Key="manifests/two.csv", Body=manifest_csv([moved]))
    second = asyncio.run(run_attach(f"s3://{bucket}/manifests/two.csv", f"s3://{bucket}/reports", run_id="n2"))

    record = sandbox_record(scenario.sandbox_url)
    assert record["duplicates"]["attachments"] == 0, "the same scan, moved, was attached twice"
    assert second["by_reason"].get("already_attached") == 1


def test_retry_failed_of_a_run_of_another_manifest_is_refused(demo_scenario: Any, bucket: str) -> None:
    """`--retry-failed RUN_ID` 'names an earlier run of the same manifest' (flow docstring), but nothing checks
    it: the earlier run's failed *row numbers* are applied to whatever manifest is given. With tomorrow's export
    (rows in another order) the rows that failed yesterday are reported `skipped` / `not_retried` 'did not fail in
    the earlier run' and other rows are worked instead. Expected: exit 2, the run is of another job."""
    import asyncio

    from connectors.errors import SetupError
    from flows.attach_flow import run_attach
    from flows.commands.demo import manifest_csv

    scenario = demo_scenario(customers=2, faults={"errors": {"share": 1.0, "statuses": [503],
                                                             "endpoints": ["upload"]}},
                             KYC_ATTACH_MAX_ATTEMPTS="1")
    first = scenario.run(run_id="y1")
    assert first["by_status"]["failed"] > 0
    s3 = make_s3_client()
    s3.put_object(Bucket=bucket, Key="manifests/other.csv", Body=manifest_csv(list(reversed(scenario.rows))))
    load_world(scenario.sandbox_url, scenario.world)
    with pytest.raises(SetupError):
        asyncio.run(run_attach(f"s3://{bucket}/manifests/other.csv", f"s3://{bucket}/reports", run_id="y2",
                                    retry_failed="y1"))


@pytest.mark.parametrize("spelling", ["s3://{b}/reports/./", "s3://{b}/./reports", "s3://{b}/x/../reports"])
def test_report_prefix_with_a_dot_segment_is_the_same_ledger(demo_scenario: Any, bucket: str, spelling: str) -> None:
    """README: `s3://bucket//reports` and `s3://bucket/reports` are one ledger (`Location.normalised`). A `.`
    segment (`$PREFIX/./`, `os.path.join(prefix, '.')`) is not normalised: the second run gets a fresh ledger and
    attaches every document again (12 of 12 twice on loopback), and run ids are not unique either (`r1` can be used
    under `reports/` and `reports/./`)."""
    import asyncio

    from connectors.errors import SetupError
    from flows.attach_flow import run_attach

    scenario = demo_scenario(customers=2)
    scenario.run(run_id="d1")
    # fixed: a '.' or '..' segment in an S3 prefix is refused (S3 keys are not paths), before anything is sent
    with pytest.raises(SetupError, match=r"'\.' or '\.\.'"):
        asyncio.run(run_attach(scenario.manifest, spelling.format(b=bucket), run_id="d2"))
    assert sandbox_record(scenario.sandbox_url)["duplicates"]["attachments"] == 0
