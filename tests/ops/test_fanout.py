"""Scale-out for real on loopback: shard runs of the attach-shard deployment on two process workers.

A real ``prefect server start``, the yaml applied with ``prefect deploy``, two ``prefect worker start`` processes
on one process pool, the Fin sandbox and the S3 server. The parent flow runs in this process against the same
server (as a data engineer's ``kyc-attach run`` would); its shards run on the workers. The report must be the
single-process run's, row for row, and the sandbox must see nothing twice.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bench.support.fanout_world import LIMIT, SHARD_DEPLOYMENT, FanOutWorld
from connectors.objects import ObjectStore
from connectors.rate_share import rate_tag, sending_tag
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo import demo_rows, demo_world
from tests.ops.fanout_helpers import report_rows
from tests.support.scenario import api_env, load_world, put_scenario, sandbox_record

pytestmark = [pytest.mark.slow]


def test_two_workers_share_the_shards_and_the_report_matches_one_process(
    two_workers: FanOutWorld, fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    world = demo_world(customers=20)
    rows, files = demo_rows(world, bucket)
    manifest = put_scenario(bucket, rows, files)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SHARD_ROWS="20", KYC_ATTACH_SETTLE_DELAY_S="0")

    # the reference: one process, a fresh world
    load_world(fin_sandbox.url, world)
    single = two_workers.run(manifest, f"s3://{bucket}/single")
    single_record = sandbox_record(fin_sandbox.url)

    # the same manifest fanned out, against a fresh world again (a fresh tenant, so a ledger of its own, on S3
    # where shard runs on other machines reach it)
    load_world(fin_sandbox.url, world)
    monkeypatch.setenv("KYC_ATTACH_SHARD_DEPLOYMENT", SHARD_DEPLOYMENT)
    monkeypatch.setenv("KYC_ATTACH_WORK_URI", f"s3://{bucket}/work")
    monkeypatch.setenv("KYC_ATTACH_LEDGER_URI", f"s3://{bucket}/ledger-fanned/")
    started = time.monotonic()
    fanned = two_workers.run(manifest, f"s3://{bucket}/fanned")
    print(f"fan-out run: {time.monotonic() - started:.1f}s, {fanned['shards']} shards")
    record = sandbox_record(fin_sandbox.url)

    assert fanned["shards"] == single["shards"] >= 4
    assert report_rows(fanned) == report_rows(single)
    assert fanned["by_status"] == single["by_status"]
    assert fanned["by_status"]["attached"] > 0
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}
    assert len(record["attachments"]) == len(single_record["attachments"])
    assert len(record["uploads"]) == len(single_record["uploads"])
    assert sum(fanned["api"]["requests"].values()) > 0
    # report.html's counters come from every shard run on both workers: nothing lost on the way to the parent
    timeline = json.loads(ObjectStore(S3Store(make_s3_client())).read(
        Location.parse(fanned["report"]).child("timeline.json")))
    seconds = timeline["seconds"].values()
    assert sum(s.get("requests", 0) for s in seconds) == sum(fanned["api"]["requests"].values())
    assert sum(s.get("rows", 0) for s in seconds) == fanned["rows_in"]

    # every shard ran as a run of the shard deployment, a subflow of the parent, and both workers worked some
    store = ObjectStore(S3Store(make_s3_client()))
    results = [json.loads(store.read(loc)) for loc in store.list(Location(bucket, "work"))
               if "/results/" in loc.key]
    assert len(results) == fanned["shards"]
    assert store.list(Location(bucket, f"work/{fanned['run_id']}/rows")) == []  # the shards' rows are gone
    assert {r["ppid"] for r in results} == set(two_workers.worker_pids)
    assert [r["stop_code"] for r in results] == [None] * len(results)  # none stopped (the parent compacts)

    runs = two_workers.shard_runs(fanned["run_id"])
    assert len(runs) == fanned["shards"]
    assert all(r.state is not None and r.state.is_completed() and r.parent_task_run_id is not None for r in runs)
    assert all(r.infrastructure_pid for r in runs)
    # each shard run is one of those sharing the API's rate, counted only while it could send (connectors.rate_share)
    assert all(rate_tag(LIMIT) in r.tags and sending_tag(rate_tag(LIMIT)) not in r.tags for r in runs)
