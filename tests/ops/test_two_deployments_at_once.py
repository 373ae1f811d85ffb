"""The migration and nightly deployments of deployments/prefect.yaml, as shipped, started at the same time over
manifests that share customers and documents, on a real Prefect server with a process pool and two workers.

A legacy archive (Bank A's layout, through the shipped mapping) and tonight's export (the canonical layout)
overlap by half: two of each one's four customers, with the same documents, named another way (customer ids in
capitals, parties by id rather than email, countries alpha-2). The sandbox answers every customer lookup 429
(`Retry-After: 1`) until one of the two runs has ended, so whichever run takes the customers' lease first still
holds it when the other looks, however far apart the worker starts them. Counted from the sandbox's own record.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pycountry
import pytest
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)

from bench.support.fanout_world import FanOutWorld
from connectors.jobs import list_manifests
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo import demo_rows, demo_world, manifest_csv
from tests.support.scenario import load_world, read_report, sandbox_record

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NIGHTLY, MIGRATION = "kyc-attach-nightly/nightly", "kyc-attach-migration/migration"
HOLD = {"random_429": {"share": 1.0, "retry_after": True, "endpoints": ["customer"]}}  # sends nothing, keeps its lease
STATUSES = {"attached", "rejected", "failed", "skipped", "unknown"}
BANK_A_TYPES = {"DRIVERS_LICENSE": "DL", "PASSPORT": "Passport", "NATIONAL_ID": "NID", "UTILITY_BILL": "UB",
                "BANK_STATEMENT": "BS"}


def _store() -> ObjectStore:
    return ObjectStore(S3Store(make_s3_client()))


def _world_of_its_own(customers: int) -> dict[str, Any]:
    """The demo world under fresh ids: the shipped ledger is one per tenant, shared with every test of the
    session, and the demo's ids are the same in each of them."""
    world = demo_world(customers=customers)
    for customer in world["customers"]:
        customer["customer_id"] = str(uuid.uuid4())
        for party in customer["associated_parties"]:
            party["id"] = str(uuid.uuid4())
    return world


def _bank_a_date(value: str) -> str:
    return date.fromisoformat(value).strftime("%d/%m/%Y") if value else ""


def _bank_a_archive(rows: list[dict[str, str]], world: dict[str, Any]) -> bytes:
    """Canonical rows as Bank A's core-banking export (mappings/bank_a.yaml): its columns and codes, parties by
    id, customer ids in capitals, countries alpha-2, dates day/month/year."""
    party_of = {(c["customer_id"], p["email"]): p["id"] for c in world["customers"] for p in c["associated_parties"]}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["CUST_NO", "PARTY_REF", "DOC_KIND", "DOC_NO", "ISS_CTRY", "ISSUED", "EXPIRES", "FACE",
                     "SCAN_URI", "BRANCH"])
    for r in rows:
        party = r.get("associated_party_id") or party_of[(r["customer_id"], r["associated_party_email"])]
        found = pycountry.countries.get(alpha_3=r["country"]) if r.get("country") else None
        country = found.alpha_2 if found else ""
        writer.writerow([r["customer_id"].upper(), party, BANK_A_TYPES[r["document_type"]],
                         r.get("document_number", ""), country, _bank_a_date(r.get("issue_date", "")),
                         _bank_a_date(r.get("expiry_date", "")), (r.get("side") or "")[:1], r["s3_uri"], "LDN-01"])
    return out.getvalue().encode()


def _bucket_of(uri: str) -> None:
    """Make the bucket of a shipped location exist on the S3 server (the session's tests share them)."""
    name = str(Location.parse(uri).bucket)
    if name not in {b["Name"] for b in make_s3_client().list_buckets()["Buckets"]}:
        make_s3_client().create_bucket(Bucket=name)


def _start(world: FanOutWorld, deployment: str, parameters: dict[str, Any]) -> UUID:
    async def create(client: Any) -> UUID:
        dep = await client.read_deployment_by_name(deployment)
        return (await client.create_flow_run_from_deployment(dep.id, parameters=parameters)).id

    run_id: UUID = world.api(create)
    return run_id


def _wait(world: FanOutWorld, run_ids: list[UUID], until: Callable[[list[bool]], bool] = all,
          timeout: float = 600) -> list[Any]:
    """The flow runs, once ``until`` holds of which of them are in a final state."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [world.api(lambda c, i=i: c.read_flow_run(i)) for i in run_ids]
        if until([r.state is not None and r.state.is_final() for r in runs]):
            return runs
        if time.monotonic() > deadline:
            logs = "\n".join((world.server.home / f"worker-{n}.log").read_text()[-2000:] for n in ("w1", "w2"))
            raise AssertionError(f"still {[r.state for r in runs]} after {timeout} s\n{logs}")
        time.sleep(1)


def _attach_run(world: FanOutWorld, parent: UUID) -> Any:
    """The one attach_manifest run a nightly or migration run started."""
    (run,) = world.api(lambda c: c.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))))
    return run


def _logs(world: FanOutWorld, run_id: UUID) -> str:
    """A flow run's log, once it has logged its end (a run's process sends its logs a moment after its state)."""
    deadline = time.monotonic() + 60
    while True:
        logs = world.api(lambda c: c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))))
        text = "\n".join(log.message for log in logs)
        if "Finished in state" in text or "Encountered exception" in text or time.monotonic() > deadline:
            return text
        time.sleep(1)


def _summary(report_uri: str, job_id: str) -> dict[str, Any]:
    """The one report of ``job_id`` under ``report_uri``."""
    store = _store()
    found = [json.loads(store.read(loc)) for loc in store.list(Location.parse(report_uri))
             if loc.key.endswith("/summary.json")]
    (summary,) = [s for s in found if s["job_id"] == job_id]
    return summary


def _documents(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each attached document as the sandbox saw it: customer, party, type and the contents of its files."""
    return [(a["customer_id"], a["associated_party_id"], a["type"], tuple(sorted(f["sha256"] for f in a["files"])))
            for a in record["attachments"]]


@pytest.mark.timeout(1800)
def test_migration_and_nightly_started_together_over_overlapping_manifests_attach_each_document_once(
    two_workers: FanOutWorld, fin_sandbox: Any, bucket: str
) -> None:
    deployments = {name: two_workers.api(lambda c, n=name: c.read_deployment_by_name(n))
                   for name in (MIGRATION, NIGHTLY)}
    nightly, migration = deployments[NIGHTLY], deployments[MIGRATION]
    for uri in (nightly.job_variables["env"]["KYC_ATTACH_LEDGER_URI"], nightly.parameters["report_uri"],
                migration.parameters["report_uri"], migration.parameters["mapping"]):
        _bucket_of(uri)
    store = _store()
    # the shipped mapping, where the migration deployment's parameter says it is
    store.write(Location.parse(migration.parameters["mapping"]), (ROOT / "mappings" / "bank_a.yaml").read_bytes())

    world = _world_of_its_own(customers=6)
    rows, files = demo_rows(world, bucket)
    for key, data in files.items():
        store.write(Location(bucket, key), data)
    ids = [c["customer_id"] for c in world["customers"]]
    archive = [r for r in rows if r["customer_id"] in ids[1:5]]  # customers 1-4, none of the demo's bad rows
    tonight = [r for r in rows if r["customer_id"] in {ids[0], *ids[3:6]}]  # 0, 3-5: customers 3 and 4 shared
    manifests = {MIGRATION: Location(bucket, "legacy/part-0001.csv"), NIGHTLY: Location(bucket, "inbox/2026-12-07.csv")}
    store.write(manifests[MIGRATION], _bank_a_archive(archive, world))
    store.write(manifests[NIGHTLY], manifest_csv(tonight))
    rows_of = {MIGRATION: len(archive), NIGHTLY: len(tonight)}
    job_of = {name: m.job_id for name, folder in ((MIGRATION, "legacy/"), (NIGHTLY, "inbox/"))
              for m in list_manifests(store, f"s3://{bucket}/{folder}")}
    load_world(fin_sandbox.url, world, HOLD)
    # As shipped: each deployment's own report location, mapping and ledger; only where the manifests are is given.
    parameters = {MIGRATION: {"source": f"s3://{bucket}/legacy/"}, NIGHTLY: {"inbox": f"s3://{bucket}/inbox/"}}

    started = {name: _start(two_workers, name, p) for name, p in parameters.items()}
    first_end = dict(zip(started, _wait(two_workers, list(started.values()), until=any), strict=True))
    httpx.post(f"{fin_sandbox.url}/_sandbox/faults", json={}).raise_for_status()  # the lease holder goes on
    ended = dict(zip(started, _wait(two_workers, list(started.values())), strict=True))

    states = {name: (run.state.name, run.state.message) for name, run in ended.items()}
    (refused,) = [name for name, run in first_end.items() if run.state is not None and run.state.is_final()]
    (holder,) = set(started) - {refused}
    assert ended[holder].state.is_completed() and ended[refused].state.is_failed(), states
    # the refused deployment run names the manifest it did not run; its attach run says why, in one line
    assert f"did not complete: {manifests[refused]}" in ended[refused].state.message, states
    held = _summary(deployments[holder].parameters["report_uri"], job_of[holder])
    refused_attach = _attach_run(two_workers, started[refused])
    why = refused_attach.state.message
    assert f"run {held['run_id']} is working on customers of this manifest" in why, why
    assert "\n" not in why
    # a refusal is an answer for the operator, not a crash: neither run's log holds a traceback
    for run_id in (started[refused], refused_attach.id):
        log = _logs(two_workers, run_id)
        assert "Finished in state Failed" in log and "Traceback" not in log, log
    first = sandbox_record(fin_sandbox.url)
    assert first["duplicates"] == {"uploads": 0, "attachments": 0}
    assert {a["customer_id"] for a in first["attachments"]} == {i for i in ids if any(
        r["customer_id"] == i for r in (archive if holder == MIGRATION else tonight))}

    # The refused deployment again, as an operator would start it: what is left is attached, nothing twice.
    (again,) = _wait(two_workers, [_start(two_workers, refused, parameters[refused])])

    assert again.state.is_completed(), again.state
    record = sandbox_record(fin_sandbox.url)
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}
    documents = _documents(record)
    assert len(documents) == len(set(documents))  # however the two manifests name a document
    assert {a["customer_id"] for a in record["attachments"]} == set(ids)
    rerun = _summary(deployments[refused].parameters["report_uri"], job_of[refused])
    # every row of both manifests is in its deployment's report, once, with one status
    for summary, name in ((held, holder), (rerun, refused)):
        report = read_report(summary)
        assert summary["rows_in"] == rows_of[name]
        assert [r["row_number"] for r in report] == list(range(1, rows_of[name] + 1))
        assert {r["status"] for r in report} <= STATUSES - {"failed", "unknown"}
    # the shared customers' documents were the holder's: the re-run skips them and sends only its own customers'
    refused_rows = tonight if refused == NIGHTLY else archive
    assert rerun["by_status"]["skipped"] == len([r for r in refused_rows if r["customer_id"] in ids[3:5]]) > 0
