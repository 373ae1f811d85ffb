"""One run at a time per customer, for real: ``kyc-attach run`` in child processes against the S3 server and the
sandbox, counting attaches from the sandbox's own record.

The first run is held in its uploads by the sandbox's gate (the `hold` fault), for as long as the test needs
the second to look, then released; the second starts once the first is held, so the two overlap. The request
timeout is raised so that a held upload is not timed out and retried into failure meanwhile.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from connectors.s3 import Location, make_s3_client
from flows.commands.demo import demo_rows, demo_world
from tests.support.cli_runs import (
    check_refused_beside_first,
    child_env,
    lease_holders,
    start_run,
    stderr_once_ended,
    wait_for,
)
from tests.support.scenario import HOLD_UPLOADS, load_world, put_scenario, release_held, sandbox_record
from transforms.exactly_once import partition_of

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

OWN_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc"]
CLOCK_11_MINUTES_AHEAD = ["faketime", "-f", "+660s"]
HELD_REQUEST_TIMEOUT_S = "600"


@pytest.mark.timeout(900)
@pytest.mark.skipif(shutil.which("faketime") is None or os.geteuid() != 0,
                    reason="needs faketime (.ci/run installs it) and root for unshare --pid")
def test_runs_in_other_pid_namespaces_and_with_a_clock_11_minutes_ahead_never_attach_twice(
    fin_sandbox: Any, bucket: str, tmp_path: Path
) -> None:
    """Neither a process id nor a clock is the judge: the second run, in a PID namespace of its own (the first's
    pid means nothing there) and with its clock 11 minutes ahead (the first's lease looks 11 minutes old to it),
    still sees the first one working and does not start; the first finishes alone."""
    world = demo_world(customers=4)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world, HOLD_UPLOADS)
    manifest = put_scenario(bucket, rows, files)
    report = f"s3://{bucket}/reports"
    env = child_env(fin_sandbox.url, tmp_path / "work", KYC_ATTACH_REQUEST_TIMEOUT_S=HELD_REQUEST_TIMEOUT_S,
                    KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")

    first = start_run(manifest, report, "one", env, wrapper=OWN_PID_NAMESPACE)
    try:
        wait_for(lambda: "one" in lease_holders(Location(bucket, "ledger")).values()
                 and sandbox_record(fin_sandbox.url)["held"] > 0, running=[first],
                 what="the first run's lease, and the first run held in its uploads")
        second = start_run(manifest, report, "two", env, wrapper=[*OWN_PID_NAMESPACE, *CLOCK_11_MINUTES_AHEAD])
        second_err = stderr_once_ended(second, fin_sandbox.url)
        assert first.poll() is None, "the first run ended before the second looked: no overlap was tested"
    finally:
        release_held(fin_sandbox.url)

    check_refused_beside_first(first, second, second_err, fin_sandbox.url)


@pytest.mark.timeout(900)
def test_runs_over_other_customers_work_side_by_side(fin_sandbox: Any, bucket: str, tmp_path: Path) -> None:
    """Two manifests whose customers fall in different partitions run at the same time under one report
    location (one ledger): both hold their lease at once, neither refuses the other, nothing is attached twice."""
    world = demo_world(customers=8)
    by_partition: dict[str, list[str]] = {}
    for customer in world["customers"]:
        by_partition.setdefault(partition_of(customer["customer_id"]), []).append(customer["customer_id"])
    groups = sorted(by_partition.values())
    halves = [{c for g in groups[0::2] for c in g}, {c for g in groups[1::2] for c in g}]
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world, HOLD_UPLOADS)
    manifests = [put_scenario(bucket, [r for r in rows if r["customer_id"] in half], files if i == 0 else {},
                              name=f"m{i}.csv") for i, half in enumerate(halves)]
    report = f"s3://{bucket}/reports"
    env = child_env(fin_sandbox.url, tmp_path / "work", KYC_ATTACH_REQUEST_TIMEOUT_S=HELD_REQUEST_TIMEOUT_S,
                    KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")
    ledger = Location(bucket, "ledger")

    first = start_run(manifests[0], report, "one", env)
    try:
        wait_for(lambda: "one" in lease_holders(ledger).values(), running=[first], what="the first run's lease")
        second = start_run(manifests[1], report, "two", env)
        wait_for(lambda: set(lease_holders(ledger).values()) == {"one", "two"}, running=[first, second],
                 what="both runs holding their leases at once")
    finally:
        release_held(fin_sandbox.url)
    outs = [p.communicate(timeout=300) for p in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], [err[-1500:] for _, err in outs]
    record = sandbox_record(fin_sandbox.url)
    attached_for = {a["customer_id"] for a in record["attachments"]}
    assert attached_for & halves[0] and attached_for & halves[1]
    assert record["duplicates"]["attachments"] == 0


@pytest.mark.timeout(900)
def test_two_overlapping_runs_under_one_report_location_do_not_both_attach(
    fin_sandbox: Any, bucket: str, tmp_path: Path
) -> None:
    """A manifest copied to a second key (or the nightly and a hand run of the same export) run at the same time
    under one report location: a document is attached at most once under one report location, whatever manifest
    carries it. The first run is held at the sandbox's gate in its first upload, its lease on S3, until the
    second has ended: the second sees the first working and does not start (exit 2, one line); released, the
    first finishes alone."""
    world = demo_world(customers=4)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world, HOLD_UPLOADS)
    manifest = put_scenario(bucket, rows, files)
    make_s3_client().copy_object(Bucket=bucket, Key="manifests/copy.csv",
                                 CopySource={"Bucket": bucket, "Key": "manifests/m.csv"})
    report = f"s3://{bucket}/reports"
    # the held upload must not time out and be retried into failure while the second run starts
    env = child_env(fin_sandbox.url, tmp_path / "work", KYC_ATTACH_REQUEST_TIMEOUT_S=HELD_REQUEST_TIMEOUT_S,
                    KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")

    first = start_run(manifest, report, "one", env)
    try:
        wait_for(lambda: sandbox_record(fin_sandbox.url)["held"] > 0, running=[first],
                 what="the first run held in its uploads")
        second = start_run(f"s3://{bucket}/manifests/copy.csv", report, "two", env)
        second_err = stderr_once_ended(second, fin_sandbox.url)
    finally:
        release_held(fin_sandbox.url)

    check_refused_beside_first(first, second, second_err, fin_sandbox.url)
