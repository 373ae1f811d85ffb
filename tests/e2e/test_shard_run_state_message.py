"""A fanned-out shard run broken by an error nobody foresaw leaves Prefect its type and place only, as the shard
task of a run on one machine does: the error's text may quote a row or a key."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

PERSON = "jane.doe@example.com"


def test_a_shard_run_broken_by_an_unforeseen_error_ends_failed_with_its_type_only(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client

    from flows.shard_flow import ShardJob, shard_flow
    from tests.support.scenario import api_env

    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")
    rows = Location(bucket, "work/r1/rows/b0000-0001.arrow")
    # the object under the rows file's key is not a rows file (a CSV a person put there by mistake)
    ObjectStore(S3Store(make_s3_client())).write(rows, f"customer_id,email\nc1,{PERSON}\n".encode())
    job = ShardJob(run_id="r1", shard="b0000-0001", rows_uri=str(rows), work_prefix=f"s3://{bucket}/work/r1",
                   part_uri=f"s3://{bucket}/work/r1/parts/b0000-0001.parquet", ledger_root=f"s3://{bucket}/ledger/j",
                   run_date=date(2026, 1, 10), dry_run=True)

    state = asyncio.run(shard_flow(job, return_state=True))

    async def message_kept_by_prefect() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
        assert run.state is not None
        return run.state.message or ""

    message = asyncio.run(message_kept_by_prefect())
    assert state.is_failed()
    assert "Unforeseen: unexpected ArrowInvalid at " in message, message
    assert "Not an Arrow file" not in message  # the library's own text stays out, whatever it quotes
