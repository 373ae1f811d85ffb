"""The lease of a fanned-out run is held by its shard runs too: a parent SIGKILLed while two workers run its
shard runs, and the same manifest run again at once, never attaches a document twice.

The shard runs are held in their uploads by the sandbox's gate (the `hold` fault; their request timeout raised
through the deployment's job variables so that a held upload is not timed out meanwhile), so the parent is killed
while they work and the re-run looks while they still do; the gate is released once the re-run has been refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bench.support.fanout_world import SHARD_DEPLOYMENT, FanOutWorld
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_rows, demo_world
from tests.support.cli_runs import start_run, wait_for
from tests.support.scenario import HOLD_UPLOADS, load_world, put_scenario, release_held, sandbox_record

pytestmark = [pytest.mark.slow]

HELD_REQUEST_TIMEOUT_S = "600"
STALE_S = 10


def shard_heartbeats(bucket: str) -> list[str]:
    store = ObjectStore(S3Store(make_s3_client()))
    return [loc.key for loc in store.list(Location(bucket, "ledger/_lease/holders"))
            if Path(loc.key).name.startswith("shard-")]


@pytest.mark.timeout(1200)
def test_a_rerun_never_sends_while_the_shard_runs_of_a_killed_parent_still_work(
    two_workers: FanOutWorld, fin_sandbox: Any, bucket: str, tmp_path: Path
) -> None:
    world = demo_world(customers=20)
    rows, files = demo_rows(world, bucket)
    manifest = put_scenario(bucket, rows, files)
    report = f"s3://{bucket}/reports"
    load_world(fin_sandbox.url, world, HOLD_UPLOADS)
    env = two_workers.server.env(
        FIN_API_URL=fin_sandbox.url, FIN_CLIENT_ID=CLIENT_ID, FIN_CLIENT_SECRET=CLIENT_SECRET,
        KYC_ATTACH_WORK_DIR=str(tmp_path / "work"), KYC_ATTACH_SETTLE_DELAY_S="0", KYC_ATTACH_RATE_LIMIT_RPS="500",
        KYC_ATTACH_SHARD_DEPLOYMENT=SHARD_DEPLOYMENT, KYC_ATTACH_WORK_URI=f"s3://{bucket}/work",
        KYC_ATTACH_SHARD_ROWS="20", KYC_ATTACH_LEASE_STALE_S=str(STALE_S),
        KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger",  # fan-out keeps its ledger on S3, where shard runs reach it
    )
    with two_workers.shard_env(KYC_ATTACH_REQUEST_TIMEOUT_S=HELD_REQUEST_TIMEOUT_S):
        parent = start_run(manifest, report, "one", env)
        try:
            wait_for(lambda: len(shard_heartbeats(bucket)) >= 2, running=[parent], timeout=300,
                     what="two shard runs working")
            os.kill(parent.pid, signal.SIGKILL)
            parent.communicate(timeout=60)

            killed = time.monotonic()
            rerun = start_run(manifest, report, "two", env)
            try:
                _, rerun_err = rerun.communicate(timeout=300)
            except subprocess.TimeoutExpired:  # held at the gate too: it started while the shard runs worked
                release_held(fin_sandbox.url)
                _, rerun_err = rerun.communicate(timeout=300)
            print(f"re-run refused {time.monotonic() - killed:.0f} s after the kill")
            assert shard_heartbeats(bucket), "the shard runs ended before the re-run looked: no overlap was tested"
        finally:
            release_held(fin_sandbox.url)  # the rest go quickly
        assert rerun.returncode == 2, rerun_err[-2000:]
        assert "run one is working on customers of this manifest" in rerun_err

        deadline = time.monotonic() + 900
        while not all(r.state is not None and r.state.is_final() for r in two_workers.shard_runs("one")):
            assert time.monotonic() < deadline, "the killed parent's shard runs never ended"
            time.sleep(2)
        # A shard run that ends well deletes its heartbeat; one the worker cancelled after its parent died leaves
        # it to go stale, which is what the third run waits for below.
        settle = time.monotonic() + 30
        while shard_heartbeats(bucket) and time.monotonic() < settle:
            time.sleep(1)
        print(f"the killed parent's shard runs ended {time.monotonic() - killed:.0f} s after the kill")

        time.sleep(STALE_S)  # the killed parent's own heartbeat goes stale (by the store's clock)
        last = start_run(manifest, report, "three", env)
        _, last_err = last.communicate(timeout=600)
        assert last.returncode == 0, last_err[-2000:]

    record = sandbox_record(fin_sandbox.url)
    assert len(record["attachments"]) > 0
    assert record["duplicates"]["attachments"] == 0
