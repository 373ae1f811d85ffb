"""Fan-out tests' shared setup on top of bench/support/fanout_world.py: the parent's environment, the report rows.

The server and workers are started once per session (``tests/ops/conftest.py``: ``two_workers``); each test
gets its own bucket, work area and report location, and picks its shard runs out by its parent's run id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.support.fanout_world import SHARD_DEPLOYMENT
from tests.support.scenario import api_env, read_report


def fan_out_env(monkeypatch: pytest.MonkeyPatch, sandbox_url: str, tmp_path: Path, bucket: str,
                **extra: str) -> None:
    """The parent's environment for a fanned-out run: the sandbox, a private work folder, the shard
    deployment, and an S3 work area and ledger in the test's bucket."""
    api_env(monkeypatch, sandbox_url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0",
            KYC_ATTACH_SHARD_DEPLOYMENT=SHARD_DEPLOYMENT, KYC_ATTACH_WORK_URI=f"s3://{bucket}/work",
            **{"KYC_ATTACH_LEDGER_URI": f"s3://{bucket}/ledger/", **extra})


def report_rows(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(row number, status, reason) of every report row, in manifest order."""
    return [(r["row_number"], r["status"], r["reason_code"]) for r in read_report(summary)]
