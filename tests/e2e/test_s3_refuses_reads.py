"""S3 refusing the reads of the source files (503 SlowDown past every retry): the run still ends with every row
of the manifest in its report, one status each, and no message names the S3 key (keys hold emails sometimes)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flows.attach_flow import run_attach
from flows.commands.demo import demo_rows, demo_world
from tests.e2e.refusing_s3_proxy import Refusals
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

OWNER = "jane.owner@example.com"


def test_source_reads_refused_end_with_every_row_reported_once_and_no_key_in_messages(
    fin_sandbox: Any, bucket: str, proxied_s3: Refusals, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    world = demo_world(customers=2)
    rows, files = demo_rows(world, bucket)
    # the source keys of one customer name its owner, as keys exported from a mail folder do
    refused = "docs/0/"
    rows = [{**r, "s3_uri": r["s3_uri"].replace(refused, f"{refused}{OWNER}/")} for r in rows]
    files = {k.replace(refused, f"{refused}{OWNER}/"): v for k, v in files.items()}
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0")
    manifest = put_scenario(bucket, rows, files)
    proxied_s3.methods, proxied_s3.prefix = ("GET", "HEAD"), f"/{bucket}/{refused}"
    proxied_s3.allowed = 0  # every read of that customer's files, from the first

    summary = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="reads-refused"))

    assert proxied_s3.refused > 0
    report = read_report(summary)
    assert [r["row_number"] for r in report] == list(range(1, len(rows) + 1))  # every row, one status each
    mine = [r for r in report if OWNER in str(rows[r["row_number"] - 1]["s3_uri"])]
    assert mine and all(r["status"] == "failed" for r in mine), Counter((r["status"], r["reason_code"]) for r in mine)
    others = [r for r in report if r not in mine and r["status"] == "attached"]
    assert others  # the other customer's documents went through
    for r in report:
        for name in ("message", "error", "detail"):
            assert OWNER not in str(r.get(name) or ""), (name, r["reason_code"])
            assert "example.com" not in str(r.get(name) or ""), (name, r["reason_code"])
    assert not sandbox_record(fin_sandbox.url)["duplicates"]["attachments"]
