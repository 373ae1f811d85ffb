"""An unforeseen error leaves a flow or task run as its type and the place in the project that raised it; the
project's own errors go on as they are."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from connectors.errors import SetupError, Unforeseen
from connectors.job_ids import sha256_of_file
from flows.safe_messages import keep_messages_safe

PERSON = "jane.doe@example.com"


@keep_messages_safe
async def _hash_a_manifest_that_is_not_there(tmp_path: Path) -> None:
    sha256_of_file(tmp_path / f"{PERSON}.csv")  # the OS's error quotes the path


@keep_messages_safe
async def _refuse() -> None:
    raise SetupError("manifest: missing required column 'customer_id'")


def test_a_library_error_is_named_by_its_type_and_the_project_line_that_met_it(tmp_path: Path) -> None:
    with pytest.raises(Unforeseen) as caught:
        asyncio.run(_hash_a_manifest_that_is_not_there(tmp_path))
    source, first = inspect.getsourcelines(sha256_of_file)
    line = first + next(i for i, text in enumerate(source) if "open(" in text)
    assert str(caught.value).startswith(f"unexpected FileNotFoundError (No such file or directory) at "
                                        f"job_ids.py:{line} "), str(caught.value)
    assert caught.value.error_type == "FileNotFoundError"
    assert PERSON not in str(caught.value)
    # nor does the original reach the traceback that Prefect logs
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_project_own_error_keeps_its_wording() -> None:
    with pytest.raises(SetupError, match=r"^manifest: missing required column 'customer_id'$"):
        asyncio.run(_refuse())


def test_the_flow_and_the_plan_task_keep_their_names_and_parameters_for_prefect() -> None:
    from flows.attach_flow import attach_manifest, plan_task

    assert attach_manifest.name == "kyc-attach" and plan_task.name == "plan"
    assert list(inspect.signature(attach_manifest.fn).parameters)[:2] == ["manifest", "report_uri"]
    assert "manifest" in attach_manifest.parameters.properties
    assert (attach_manifest.description or "").startswith("Attach the documents of ``manifest``")


def test_a_wrapped_flow_parameter_of_a_project_type_is_resolved_in_its_own_module() -> None:
    """Prefect validates a shard run's ``job`` against its annotation; written as text, it must resolve where
    ``ShardJob`` is defined, not where the wrapper is."""
    from flows.shard_flow import ShardJob, shard_flow

    assert inspect.signature(shard_flow.fn).parameters["job"].annotation is ShardJob
    job = {"run_id": "r1", "shard": "b0000-0010", "rows_uri": "s3://w/r", "work_prefix": "s3://w/r1",
           "part_uri": "s3://w/p", "ledger_root": "s3://w/l", "run_date": "2026-01-10", "dry_run": True}
    assert isinstance(shard_flow.validate_parameters({"job": job})["job"], ShardJob)
