"""deployments/prefect.yaml applied to a real Prefect server with `prefect deploy`, runs picked up by a worker.

One server, one process pool, one deploy and one worker for the module (the server's start is the cost).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from bench.support.prefect_server import PrefectServer, prefect_server
from connectors.jobs import list_manifests
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_rows, demo_world, manifest_csv
from tests.support.scenario import load_world, put_scenario, sandbox_record

pytestmark = [pytest.mark.slow]

POOL = "kyc-attach-process"
RUN_DEPLOYMENTS = ("kyc-attach-nightly/nightly", "kyc-attach-migration/migration", "kyc-attach/attach")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, fin_sandbox: Any
             ) -> Iterator[PrefectServer]:
    """A server with the yaml's deployments applied and a worker polling the process pool."""
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server(home) as server:
        server.cli("work-pool", "create", POOL, "--type", "process")
        out = server.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
        assert "nightly" in out and "migration" in out
        # the runs below use the ledger the yaml gives every deployment: its bucket must exist on the S3 server
        ledger = server.api(lambda c: c.read_deployment_by_name(RUN_DEPLOYMENTS[0])).job_variables["env"]
        ledger_bucket = Location.parse(ledger["KYC_ATTACH_LEDGER_URI"]).bucket
        if ledger_bucket not in {b["Name"] for b in make_s3_client().list_buckets()["Buckets"]}:
            make_s3_client().create_bucket(Bucket=ledger_bucket)
        env = server.env(FIN_API_URL=fin_sandbox.url, FIN_CLIENT_ID=CLIENT_ID, FIN_CLIENT_SECRET=CLIENT_SECRET,
                         KYC_ATTACH_WORK_DIR=str(home / "work"), KYC_ATTACH_RATE_LIMIT_RPS="500")
        with server.worker(POOL, env):
            yield server


def run_and_wait(server: PrefectServer, deployment: str, parameters: dict[str, Any], timeout: float = 150) -> Any:
    """Create a run of a deployment, wait for a final state, return the flow run."""
    async def create(client: Any) -> UUID:
        dep = await client.read_deployment_by_name(deployment)
        return (await client.create_flow_run_from_deployment(dep.id, parameters=parameters)).id

    run_id = server.api(create)
    deadline = time.monotonic() + timeout
    while True:
        run = server.api(lambda c: c.read_flow_run(run_id))
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            log = (server.home / "worker-w1.log").read_text()[-3000:]
            raise AssertionError(f"{deployment}: still {run.state} after {timeout}s\n{log}")
        time.sleep(1)


def _summaries(bucket: str) -> list[dict[str, Any]]:
    store = ObjectStore(S3Store(make_s3_client()))
    found = [loc for loc in store.list(Location(bucket, "reports")) if loc.key.endswith("/summary.json")]
    return [json.loads(store.read(loc)) for loc in found]


def test_yaml_applies_typed_schedule_and_limits(deployed: PrefectServer) -> None:
    nightly = deployed.api(lambda c: c.read_deployment_by_name("kyc-attach-nightly/nightly"))
    assert nightly.global_concurrency_limit.limit == 1
    assert nightly.concurrency_options.collision_strategy == "ENQUEUE"
    assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]
    assert nightly.schedules[0].schedule.timezone == "UTC"
    # one typed parameter each (a run overrides one without restating the others): the schema names them
    schema = nightly.parameter_openapi_schema
    assert {"inbox", "report_uri", "mapping", "dry_run", "max_manifests", "carriers", "settle_s"} <= set(
        schema["properties"])
    assert set(schema["required"]) == {"report_uri"}  # an inbox, or carriers: a run may give either
    assert nightly.parameters == {"inbox": "s3://kyc-inbox/manifests/", "report_uri": "s3://kyc-reports/kyc-attach/"}
    assert nightly.work_pool_name == POOL
    # one parameter overridden, the deployment's others kept (a run scheduled a day out: no worker takes it)
    from datetime import UTC, datetime, timedelta

    from prefect.states import Scheduled

    async def dry_run_only(client: Any) -> Any:
        later = Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=1))
        run = await client.create_flow_run_from_deployment(nightly.id, parameters={"dry_run": True}, state=later)
        await client.delete_flow_run(run.id)
        return run

    overridden = deployed.api(dry_run_only)
    assert overridden.parameters == {**nightly.parameters, "dry_run": True}
    migration = deployed.api(lambda c: c.read_deployment_by_name("kyc-attach-migration/migration"))
    assert "source" in migration.parameter_openapi_schema["required"]


def test_every_deployment_shares_one_s3_ledger_whatever_its_report_location(deployed: PrefectServer) -> None:
    deployments = [deployed.api(lambda c, n=n: c.read_deployment_by_name(n)) for n in RUN_DEPLOYMENTS]
    ledgers = {(d.job_variables or {}).get("env", {}).get("KYC_ATTACH_LEDGER_URI") for d in deployments}
    (ledger,) = ledgers
    assert ledger is not None and ledger.startswith("s3://")
    reports = [d.parameters["report_uri"] for d in deployments if "report_uri" in d.parameters]
    assert len(set(reports)) == 2  # nightly and migration report to different places, on one ledger
    assert not any(Location.parse(ledger).normalised().key.startswith(Location.parse(r).normalised().key)
                   and Location.parse(ledger).bucket == Location.parse(r).bucket for r in reports)


def test_attach_and_nightly_deployments_run_by_a_worker_nightly_skips_completed(
    deployed: PrefectServer, fin_sandbox: Any, bucket: str
) -> None:
    world = demo_world(customers=4)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world)
    ids = [c["customer_id"] for c in world["customers"]]
    first = [r for r in rows if r["customer_id"] in ids[2:]]  # no bad rows: those are all customer 0's
    second = [r for r in rows if r not in first]
    put_scenario(bucket, [], files)
    store = ObjectStore(S3Store(make_s3_client()))
    old, new = (f"s3://{bucket}/inbox/2024-01-0{d}.csv" for d in (1, 2))
    store.write(Location.parse(old), manifest_csv(first))
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    store.write(Location.parse(new), manifest_csv(second))
    reports = f"s3://{bucket}/reports"
    # a deployment run picked up by the worker: the first manifest, by hand
    first_run = run_and_wait(deployed, "kyc-attach/attach", {"manifest": old, "report_uri": reports})
    assert first_run.state.is_completed(), first_run.state
    [summary] = _summaries(bucket)
    assert summary["by_status"]["attached"] == len(first) == 4 * 2
    before = sandbox_record(fin_sandbox.url)
    assert len(before["attachments"]) == 3 * 2

    run = run_and_wait(deployed, "kyc-attach-nightly/nightly",
                       {"inbox": f"s3://{bucket}/inbox/", "report_uri": reports})

    assert run.state.is_completed(), run.state
    summaries = _summaries(bucket)
    assert len(summaries) == 2  # the old manifest was not run again
    assert sorted(s["rows_in"] for s in summaries) == sorted([len(first), len(second)])
    after = sandbox_record(fin_sandbox.url)
    assert len(after["uploads"]) > len(before["uploads"])
    assert after["duplicates"] == {"uploads": 0, "attachments": 0}
    assert {s["job_id"] for s in summaries} == {m.job_id for m in list_manifests(store, f"s3://{bucket}/inbox/")}
    # the second manifest's bad rows are rejected (settled), not failed: its job is complete too, so the next
    # night runs it only to work again its one row rejected missing_object (an object may since have appeared)
    again = run_and_wait(deployed, "kyc-attach-nightly/nightly",
                         {"inbox": f"s3://{bucket}/inbox/", "report_uri": reports})
    assert again.state.is_completed()
    reworked = [s for s in _summaries(bucket) if s.get("include_rejected")]
    assert len(_summaries(bucket)) == 3 and len(reworked) == 1
    assert reworked[0]["by_reason"].get("missing_object") == 1 and reworked[0]["by_status"].get("attached") == 0
    assert len(sandbox_record(fin_sandbox.url)["attachments"]) == len(after["attachments"])
