"""The summary's counts add up only when every manifest row is in the report exactly once."""

from __future__ import annotations

import pyarrow as pa

from connectors.report_store import build_summary
from transforms.report import REPORT_SCHEMA


def report(rows: list[tuple[int, str, str | None]]) -> pa.Table:
    columns = {"row_number": [r for r, _, _ in rows], "status": [s for _, s, _ in rows],
               "reason_code": [c for _, _, c in rows]}
    return pa.table({f.name: pa.array(columns.get(f.name, [None] * len(rows)), f.type) for f in REPORT_SCHEMA})


def test_every_row_once_adds_up() -> None:
    summary = build_summary(report([(1, "attached", None), (2, "rejected", "bad_date"), (3, "attached", None)]), 3, {})
    assert summary["counts_add_up"] and summary["problems"] == []


def test_a_row_counted_twice_in_place_of_a_missing_one_does_not_add_up() -> None:
    summary = build_summary(report([(1, "attached", None), (2, "rejected", "bad_date"), (2, "attached", None)]), 3, {})
    assert summary["rows_out"] == 3
    assert not summary["counts_add_up"]
    assert summary["problems"] == ["1 report line(s) repeat a row already counted"]
