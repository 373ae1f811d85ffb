"""Scale-out for real on loopback: shard runs of the attach-shard deployment on two process workers.

A real ``prefect server start``, the yaml applied with ``prefect deploy``, two ``prefect worker start`` processes
on one process pool, the Fin sandbox and the S3 server. The parent flow runs in this process against the same
server (as a data engineer's ``kyc-attach run`` would); its shards run on the workers. The report must be the
single-process run's, row for row, and the sandbox must see nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.attach_flow import attach_manifest
from flows.demo import CLIENT_ID, CLIENT_SECRET, demo_rows, demo_world
from tests.e2e.helpers import api_env, load_world, put_scenario, read_report, sandbox_record
from tests.ops.prefect_server import PrefectServer, prefect_server

pytestmark = [pytest.mark.slow]

POOL = "kyc-attach-process"
SHARD_DEPLOYMENT = "attach-shard/attach-shard"
LIMIT = "kyc-attach-fin-api"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, fin_sandbox: Any
                ) -> Iterator[tuple[PrefectServer, list[int]]]:
    """A server with the yaml applied and two workers on the process pool; the workers' pids."""
    home = tmp_path_factory.mktemp("prefect-fanout")
    with prefect_server(home) as server:
        server.cli("work-pool", "create", POOL, "--type", "process")
        out = server.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
        assert "attach-shard" in out
        pids = []
        with server.worker(POOL, _worker_env(server, fin_sandbox.url, home, "w1"), name="w1", limit=2) as w1, \
                server.worker(POOL, _worker_env(server, fin_sandbox.url, home, "w2"), name="w2", limit=2) as w2:
            pids = [w1.pid, w2.pid]
            yield server, pids


def _worker_env(server: PrefectServer, sandbox_url: str, home: Any, name: str) -> dict[str, str]:
    # Settings and secrets reach shard runs through the worker's environment only (S3: AWS_* from os.environ).
    return server.env(FIN_API_URL=sandbox_url, FIN_CLIENT_ID=CLIENT_ID, FIN_CLIENT_SECRET=CLIENT_SECRET,
                      KYC_ATTACH_WORK_DIR=str(home / f"work-{name}"), KYC_ATTACH_SETTLE_DELAY_S="0")


def _run(server: PrefectServer, manifest: str, report_uri: str) -> dict[str, Any]:
    """The parent flow in this process, against the loopback server."""
    async def go() -> dict[str, Any]:
        return await attach_manifest(manifest, report_uri)

    _drain_prefect_services()
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        try:
            return asyncio.run(go())
        finally:
            _drain_prefect_services()


def _drain_prefect_services() -> None:
    # Prefect's events and log workers are per process and are not keyed by API URL: flush and stop them at
    # the switch between this server and the session's test harness, or later tests would send to a stopped one.
    EventsWorker.drain_all(timeout=60)
    APILogWorker.drain_all(timeout=60)


def _api(server: PrefectServer, fn: Any) -> Any:
    async def go() -> Any:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            async with get_client() as client:
                return await fn(client)

    return asyncio.run(go())


def _rows(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r["row_number"], r["status"], r["reason_code"]) for r in read_report(summary)]


def test_two_workers_share_the_shards_and_the_report_matches_one_process(
    two_workers: tuple[PrefectServer, list[int]], fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    server, worker_pids = two_workers
    world = demo_world(customers=20)
    rows, files = demo_rows(world, bucket)
    manifest = put_scenario(bucket, rows, files)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SHARD_ROWS="20", KYC_ATTACH_SETTLE_DELAY_S="0")

    # the reference: one process, a fresh world
    load_world(fin_sandbox.url, world)
    single = _run(server, manifest, f"s3://{bucket}/single")
    single_record = sandbox_record(fin_sandbox.url)

    # the same manifest fanned out, against a fresh world again (its own report location, so its own ledger)
    load_world(fin_sandbox.url, world)
    monkeypatch.setenv("KYC_ATTACH_SHARD_DEPLOYMENT", SHARD_DEPLOYMENT)
    monkeypatch.setenv("KYC_ATTACH_WORK_URI", f"s3://{bucket}/work")
    started = time.monotonic()
    fanned = _run(server, manifest, f"s3://{bucket}/fanned")
    print(f"fan-out run: {time.monotonic() - started:.1f}s, {fanned['shards']} shards")
    record = sandbox_record(fin_sandbox.url)

    assert fanned["shards"] == single["shards"] >= 4
    assert _rows(fanned) == _rows(single)
    assert fanned["by_status"] == single["by_status"]
    assert fanned["by_status"]["attached"] > 0
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}
    assert len(record["attachments"]) == len(single_record["attachments"])
    assert len(record["uploads"]) == len(single_record["uploads"])
    assert sum(fanned["api"]["requests"].values()) > 0

    # every shard ran as a run of the shard deployment, a subflow of the parent, and both workers worked some
    store = ObjectStore(S3Store(make_s3_client()))
    results = [json.loads(store.read(loc)) for loc in store.list(Location(bucket, "work"))
               if "/results/" in loc.key]
    assert len(results) == fanned["shards"]
    assert {r["ppid"] for r in results} == set(worker_pids)

    runs = _api(server, lambda c: c.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["attach-shard"]))))
    assert len(runs) == fanned["shards"]
    assert all(r.state.is_completed() and r.parent_task_run_id is not None for r in runs)
    assert all(r.infrastructure_pid for r in runs)
    limit = _api(server, lambda c: c.read_global_concurrency_limit_by_name(LIMIT))
    assert limit.slot_decay_per_second == 500
