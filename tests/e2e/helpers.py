"""What the end-to-end tests read back from a run stopped after it began sending."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from connectors.s3 import make_s3_client
from tests.support.scenario import read_report


def report_of_a_run_stopped_after_sending(bucket: str, run_id: str, rows: int) -> list[dict[str, Any]]:
    """The report rows a stopped run wrote, checked to hold every row once, some attached and the rows it never
    reached failed as ``run_stopped``."""
    report = read_report({"report": f"s3://{bucket}/reports/{run_id}"})
    assert sorted(r["row_number"] for r in report) == list(range(1, rows + 1)), "not every row once in the report"
    by_status = Counter(r["status"] for r in report)
    assert by_status["attached"] > 0, f"nothing attached before the stop: {dict(by_status)}"
    stopped = [r for r in report if r["reason_code"] == "run_stopped"]
    assert stopped, "no row was left by the stop"
    assert all(r["status"] == "failed" for r in stopped), "a row left by the stop is not failed"
    return report


def written_summary(bucket: str, run_id: str) -> dict[str, Any]:
    """The summary.json the run wrote beside its report."""
    body = make_s3_client().get_object(Bucket=bucket, Key=f"reports/{run_id}/summary.json")["Body"].read()
    return json.loads(body)
