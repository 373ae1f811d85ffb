"""KYC_ATTACH_REPORT_S3_URI=hashed on the real servers: the report names no key, and its digests are keyed by the
ledger's secret, so they stay the same from run to run of a tenant and only the secret's holder can recompute them."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.s3 import make_s3_client
from flows.attach_flow import run_attach
from flows.commands.demo import demo_rows, demo_world
from tests.support.scenario import api_env, load_world, put_scenario, read_report

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

NAMES = ("Erika_Mustermann", "Max_Muster", "Ann_Lee")


def _named_keys(bucket: str) -> tuple[dict[str, Any], list[dict[str, str]], dict[str, bytes]]:
    """The demo scenario with each customer's files under a folder that spells out a person's name."""
    world = demo_world(customers=3)
    rows, files = demo_rows(world, bucket)

    def renamed(key: str) -> str:
        folder, _, rest = key.partition("/")
        if folder == "docs":
            number, _, leaf = rest.partition("/")
            return f"K00/{NAMES[int(number)]}/{leaf}"
        return f"K00/{NAMES[0]}/{folder}-{rest}"

    for row in rows:
        row["s3_uri"] = f"s3://{bucket}/{renamed(row['s3_uri'].split('/', 3)[3])}"
    return world, rows, {renamed(k): v for k, v in files.items()}


def test_the_report_hashes_keys_with_the_ledger_secret_alike_in_every_run(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    world, rows, files = _named_keys(bucket)
    load_world(fin_sandbox.url, world)
    manifest = put_scenario(bucket, rows, files)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_REPORT_S3_URI="hashed",
            KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")

    first = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))
    second = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports"))

    assert first["by_status"]["attached"] > 0 and second["by_status"]["skipped"] == first["by_status"]["attached"]
    s3 = make_s3_client()
    for summary in (first, second):
        csv_text = s3.get_object(Bucket=bucket, Key=f"reports/{summary['run_id']}/rows.csv")["Body"].read().decode()
        assert "K00/" not in csv_text
        assert not [name for name in NAMES if name in csv_text or name.split("_")[1] in csv_text]
        assert len(list(csv.DictReader(io.StringIO(csv_text)))) == len(rows)

    hashed_first = [r["s3_uri"] for r in read_report(first)]
    assert hashed_first == [r["s3_uri"] for r in read_report(second)]
    # what an operator holding the ledger's secret does to find a file's rows; a plain SHA-256 finds nothing
    secret = bytes.fromhex(s3.get_object(Bucket=bucket, Key="ledger/_documents/_details_secret")["Body"].read()
                           .decode())
    for row, hashed in zip(rows, hashed_first, strict=True):
        key = row["s3_uri"].split("/", 3)[3]
        digest = hmac.new(secret, f"report:{key}".encode(), hashlib.sha256).hexdigest()[:32]
        assert hashed == f"s3://{bucket}/hmac:{digest}"
        assert hashlib.sha256(key.encode()).hexdigest()[:16] not in hashed


def test_hashed_mode_names_the_manifest_by_its_digest_in_the_summary_and_in_prefect(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.attach_flow import attach_manifest

    world, rows, files = _named_keys(bucket)
    load_world(fin_sandbox.url, world)
    manifest = put_scenario(bucket, rows, files, name=f"{NAMES[1]}.csv")
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_REPORT_S3_URI="hashed",
            KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")

    state = asyncio.run(attach_manifest(manifest, f"s3://{bucket}/reports", run_id="r1", return_state=True))

    s3 = make_s3_client()
    secret = bytes.fromhex(s3.get_object(Bucket=bucket, Key="ledger/_documents/_details_secret")["Body"].read()
                           .decode())
    digest = hmac.new(secret, f"report:manifests/{NAMES[1]}.csv".encode(), hashlib.sha256).hexdigest()[:32]
    summary_text = s3.get_object(Bucket=bucket, Key="reports/r1/summary.json")["Body"].read().decode()
    assert json.loads(summary_text)["manifest"] == f"s3://{bucket}/hmac:{digest}"
    page = s3.get_object(Bucket=bucket, Key="reports/r1/report.html")["Body"].read().decode()

    async def kept_by_prefect() -> tuple[dict[str, Any], list[Any], list[str]]:
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
            artifacts = await client.read_artifacts()
            task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        return (run.parameters, [a.data for a in artifacts if a.flow_run_id == run.id],
                [t.model_dump_json() for t in task_runs])

    parameters, artifacts, task_runs = asyncio.run(kept_by_prefect())
    assert parameters["manifest"] == f"s3://{bucket}/hmac:{digest}"
    assert artifacts and task_runs, "the run made no artifacts or task runs: nothing proved"
    for text in (summary_text, page, json.dumps(parameters), json.dumps(artifacts), *task_runs):
        assert NAMES[1] not in text


def _a_mapping_named_by_a_person(fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *,
                                  wrong: bool = False) -> tuple[str, str, list[Any]]:
    """A legacy archive staged with its mapping kept under the name of whoever wrote it (broken when ``wrong``), and
    the environment of a hashed-report run with an S3 ledger: (archive, the mapping's location, the archive's rows)."""
    from connectors.objects import ObjectStore
    from connectors.s3 import Location, S3Store
    from tests.support.legacy_archives import stage_archive

    archive, mapping, world, rows = stage_archive("carrier_c", bucket)
    load_world(fin_sandbox.url, world)
    store = ObjectStore(S3Store(make_s3_client()))
    named = f"s3://{bucket}/mappings/{NAMES[2]}.yaml"
    body = store.read(Location.parse(mapping))
    if wrong:
        body = body.decode().replace('date_format: "%d.%m.%Y"', 'date_format: "%Q"').encode()
    store.write(Location.parse(named), body)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_REPORT_S3_URI="hashed",
            KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")
    return archive, named, rows


def test_hashed_mode_names_the_mapping_by_its_digest_in_the_summary_and_in_prefect(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client

    from flows.attach_flow import attach_manifest

    archive, named, rows = _a_mapping_named_by_a_person(fin_sandbox, bucket, monkeypatch, tmp_path)

    state = asyncio.run(attach_manifest(archive, f"s3://{bucket}/reports", run_id="m1", mapping=named,
                                        dry_run=True, return_state=True))

    assert state.is_completed(), state.message
    s3 = make_s3_client()
    secret = bytes.fromhex(s3.get_object(Bucket=bucket, Key="ledger/_documents/_details_secret")["Body"].read()
                           .decode())
    digest = hmac.new(secret, f"report:mappings/{NAMES[2]}.yaml".encode(), hashlib.sha256).hexdigest()[:32]
    summary_text = s3.get_object(Bucket=bucket, Key="reports/m1/summary.json")["Body"].read().decode()
    summary = json.loads(summary_text)
    assert summary["mapping"] == f"s3://{bucket}/hmac:{digest}"
    assert summary["rows_in"] >= len(rows) and summary["mapping_digest"], "the mapping was not read"
    page = s3.get_object(Bucket=bucket, Key="reports/m1/report.html")["Body"].read().decode()

    async def parameters_kept_by_prefect() -> dict[str, Any]:
        async with get_client() as client:
            return (await client.read_flow_run(state.state_details.flow_run_id)).parameters

    parameters = asyncio.run(parameters_kept_by_prefect())
    assert parameters["mapping"] == f"s3://{bucket}/hmac:{digest}"
    for text in (summary_text, page, json.dumps(parameters)):
        assert NAMES[2] not in text


def test_hashed_mode_names_a_wrong_mapping_by_its_digest_in_the_states_prefect_keeps(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.attach_flow import attach_manifest

    archive, named, _ = _a_mapping_named_by_a_person(fin_sandbox, bucket, monkeypatch, tmp_path, wrong=True)

    state = asyncio.run(attach_manifest(archive, f"s3://{bucket}/reports", run_id="w1", mapping=named,
                                        dry_run=True, return_state=True))

    async def messages_kept_by_prefect() -> tuple[str, list[str]]:
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
            task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        assert run.state is not None
        return run.state.message or "", [t.state.message or "" for t in task_runs if t.state is not None]

    message, task_messages = asyncio.run(messages_kept_by_prefect())
    assert state.is_failed() and "date_format" in message, message  # the key in the file that is wrong
    assert task_messages, "no task run was kept: nothing proved"
    for text in (message, *task_messages):
        assert NAMES[2] not in text


def test_hashed_mode_nightly_names_its_manifests_by_their_digests_in_its_state_result_and_logs(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from connectors.objects import ObjectStore
    from connectors.s3 import Location, S3Store
    from flows.commands.demo import manifest_csv
    from flows.nightly import nightly

    world, rows, files = _named_keys(bucket)
    load_world(fin_sandbox.url, world)
    put_scenario(bucket, rows, files)
    store = ObjectStore(S3Store(make_s3_client()))
    store.write(Location(bucket, f"inbox/{NAMES[0]}.csv"), manifest_csv(rows))
    header, _, rest = manifest_csv(rows).partition(b"\n")  # a manifest its run refuses: a required column missing
    store.write(Location(bucket, f"inbox/{NAMES[1]}.csv"), header.replace(b"customer_id,", b"customer,") + b"\n" + rest)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_REPORT_S3_URI="hashed",
            KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")

    state = asyncio.run(nightly(report_uri=f"s3://{bucket}/reports", inbox=f"s3://{bucket}/inbox/",
                                return_state=True))

    async def kept_by_prefect() -> tuple[str, list[str]]:
        await APILogHandler.aflush()
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        assert run.state is not None
        return run.state.message or "", [entry.message for entry in logs]

    message, logs = asyncio.run(kept_by_prefect())
    result = asyncio.run(state.aresult(raise_on_failure=False))
    assert state.is_failed() and len(result["runs"]) == 1 and len(result["errors"]) == 1, result
    assert f"s3://{bucket}/hmac:" in message and "missing required column 'customer_id'" in json.dumps(result)
    assert logs, "the nightly run logged nothing: nothing proved"
    for text in (message, json.dumps(result), *logs):
        assert not [name for name in NAMES if name in text], text
