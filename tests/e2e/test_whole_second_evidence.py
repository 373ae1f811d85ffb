"""A lost answer settled from a status stamped to the whole second (some gateways truncate ``updated_at``)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.attach_flow import run_attach
from flows.commands.demo import demo_rows, demo_world
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record, valid_rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_status_moved_within_the_send_second_settles_attached_on_the_next_run(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    customers = 8
    world = demo_world(customers=customers)
    # Every attach is applied and its answer lost; the party moves 0.3 s later (after the run looked), and the
    # API stamps the move to the whole second: most moves fall in the second of their send.
    world.update(status_moves_after_s=0.3, updated_at_whole_seconds=True)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world, {"commit_then_fail": {"share": 1.0, "mode": "500"}})
    manifest = put_scenario(bucket, rows, files)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0")  # default trust settings

    first = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="first"))
    assert {r["status"] for r in valid_rows(read_report(first))} == {"unknown"}  # nothing had moved yet
    sent = sandbox_record(fin_sandbox.url)["requests"]["attach"]
    time.sleep(1.0)  # every move is due
    httpx.post(f"{fin_sandbox.url}/_sandbox/faults", json={}).raise_for_status()

    second = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="second"))

    valid = valid_rows(read_report(second))
    assert {r["status"] for r in valid} == {"attached"}, Counter((r["status"], r["reason_code"]) for r in valid)
    record = sandbox_record(fin_sandbox.url)
    assert record["requests"]["attach"] == sent  # settled from the statuses, nothing sent again
    assert record["duplicates"]["attachments"] == 0
    assert len(record["attachments"]) == 3 * customers
