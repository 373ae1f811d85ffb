"""What Prefect keeps of a run refused or broken before it sent anything, read back from Prefect's API: the flow
and task runs' state messages and the run's logs name a project error's field and reason, an unforeseen error's
type only, and never the manifest's key (keys can name people)."""

from __future__ import annotations

import asyncio
import errno
from typing import Any
from uuid import UUID

import pytest

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.attach_flow import attach_manifest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

PERSON = "jane.doe@example.com"


async def _kept_by_prefect(flow_run_id: UUID) -> tuple[str, list[str], list[str]]:
    """The flow run's state message, its task runs' state messages and its log lines, as Prefect's API has them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()  # the run's log lines reach the API in batches
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    assert run.state is not None
    return (run.state.message or "", [t.state.message or "" for t in task_runs if t.state is not None],
            [entry.message for entry in logs])


def _run(manifest_key: str, body: bytes, bucket: str) -> tuple[Any, tuple[str, list[str], list[str]]]:
    ObjectStore(S3Store(make_s3_client())).write(Location(bucket, manifest_key), body)
    state = asyncio.run(attach_manifest(f"s3://{bucket}/{manifest_key}", f"s3://{bucket}/reports",
                                        return_state=True))
    return state, asyncio.run(_kept_by_prefect(state.state_details.flow_run_id))


def test_a_refusal_before_sending_names_the_field_in_prefect_and_an_unforeseen_error_only_its_type(
    demo_scenario: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = demo_scenario(customers=1)
    good = ObjectStore(S3Store(make_s3_client())).read(Location.parse(scenario.manifest))
    header, _, rest = good.partition(b"\n")

    # the project's own refusal: a required column missing, said with the column's name and the reason
    without_customer = header.replace(b"customer_id,", b"customer,") + b"\n" + rest
    state, (message, task_messages, logs) = _run(f"kyc/{PERSON}.csv", without_customer, bucket)
    assert state.is_failed()
    assert "missing required column 'customer_id'" in message, message
    for text in (message, *task_messages, *logs):
        assert PERSON not in text

    # an error of another library that quotes the key, as the OS did for a key's name too long for a file's
    def too_long(path: Any) -> Any:
        raise OSError(errno.ENAMETOOLONG, "File name too long", f"/work/manifests/{PERSON}.csv")

    monkeypatch.setattr("connectors.manifest._detect_format", too_long)
    state, (message, task_messages, logs) = _run(f"kyc/{PERSON}-again.csv", good, bucket)
    assert state.is_failed()
    assert "OSError" in message, f"the run did not stop on the error this test makes: {message}"
    # the type, the OS's reason (never the path it names) and the place to look
    assert "unexpected OSError (File name too long) at manifest.py:" in message, message
    assert task_messages and logs, "no task run or log line was kept: nothing proved"
    for text in (message, *task_messages, *logs):
        assert PERSON not in text
