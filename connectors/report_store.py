"""The outcome report: every manifest row with one status, plus a summary, written under the run's prefix."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.codes import Reason
from transforms.report import (
    REPORT_SCHEMA,
    escape_csv_formula_column,
    exit_code_of,
    hash_s3_uri_column,
    report_schema,
    summarise,
)
from transforms.report_page import render_report_page
from transforms.run_timeline import Timeline

_CONTENT_TYPES = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet", ".jsonl": "application/x-ndjson",
                  ".html": "text/html; charset=utf-8", ".json": "application/json"}


#: The plan's file of a mapping's carried columns (``row_number`` + one text column each), in the run's folder.
CARRIED_FILE = "carried.parquet"


#: The report's columns that name objects or files (keys and archive names can carry people's names): with a
#: mask secret, each is written as a keyed digest (``transforms.report.hashed_s3_uri``).
HASHED_COLUMNS = ("s3_uri", "source_file")


def assemble_report(parts: list[Path], out_dir: Path, *, mask_secret: bytes | None = None
                    ) -> tuple[Path, Path, pa.Table]:
    """Join the report parts in manifest order into ``rows.parquet`` and ``rows.csv``, with the columns a
    mapping carries (``CARRIED_FILE`` next to ``out_dir``, when the plan wrote one) joined by row number.

    With ``mask_secret`` (the ledger's secret), each of :data:`HASHED_COLUMNS` is written as its bucket and a
    keyed digest of its key (``hashed_s3_uri``)."""
    tables = [pq.read_table(p).cast(REPORT_SCHEMA) for p in parts if p.exists()]
    table = pa.concat_tables(tables) if tables else REPORT_SCHEMA.empty_table()
    carried_path = out_dir.parent / CARRIED_FILE
    if carried_path.exists():
        carried = pq.read_table(carried_path)
        names = [n for n in carried.column_names if n != "row_number"]
        table = table.join(carried, "row_number", join_type="left outer").cast(report_schema(names))
    if mask_secret is not None:
        for name in HASHED_COLUMNS:
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name,
                                         hash_s3_uri_column(table.column(name), mask_secret))
    table = table.sort_by("row_number")
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet_path, csv_path = out_dir / "rows.parquet", out_dir / "rows.csv"
    pq.write_table(table, parquet_path)
    pacsv.write_csv(_escaped(table), csv_path)
    return parquet_path, csv_path, table


def _escaped(table: pa.Table) -> pa.Table:
    """Text cells a spreadsheet would run as formulas, made inert."""
    for i, f in enumerate(table.schema):
        if pa.types.is_string(f.type):
            table = table.set_column(i, f.name, escape_csv_formula_column(table.column(i)))
    return table


def build_summary(table: pa.Table, rows_in: int, extra: dict[str, Any]) -> dict[str, Any]:
    """Counts by status and reason (they add up to ``rows_in``), plus what the caller adds."""
    statuses = {r["values"]: r["counts"] for r in pc.value_counts(table.column("status")).to_pylist()}
    reasons = {
        r["values"]: r["counts"]
        for r in pc.value_counts(pc.drop_null(table.column("reason_code"))).to_pylist()
    }
    distinct = pc.count_distinct(table.column("row_number")).as_py()
    return {**summarise(statuses, reasons, rows_in, distinct), **extra}


def write_report_page(summary: dict[str, Any], timeline: Timeline, out_dir: Path) -> dict[str, Path]:
    """``report.html`` (the page people read) and ``timeline.json`` (the per-second counters behind its charts)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page, counters = out_dir / "report.html", out_dir / "timeline.json"
    page.write_text(render_report_page(summary, timeline, exit_code=exit_code_of(summary)), encoding="utf-8")
    counters.write_text(json.dumps(timeline.as_dict(), separators=(",", ":")), encoding="utf-8")
    return {"report.html": page, "timeline.json": counters}


def publish_report(store: ObjectStore, run_prefix: Location, files: dict[str, Path], summary: dict[str, Any]) -> None:
    """Upload the report files and the summary; nothing already there is overwritten."""
    for name, path in files.items():
        content_type = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        store.write_file(run_prefix.child(name), path, content_type=content_type)
    store.write(run_prefix.child("summary.json"), json.dumps(summary, indent=2, sort_keys=True).encode(),
                content_type="application/json")


def check_same_job(store: ObjectStore, run_prefix: Location, job_id: str) -> None:
    """``SetupError`` when the run at ``run_prefix`` worked another job (another manifest, or this one changed):
    its row numbers would point at other rows here."""
    try:
        earlier = json.loads(store.read(run_prefix.child("summary.json"))).get("job_id")
    except Exception:  # no summary (a run stopped while publishing): nothing to compare, the rows file decides
        return
    if earlier and earlier != job_id:
        raise SetupError(f"--retry-failed: run {Path(run_prefix.key).name} worked another manifest (or this one "
                         "has changed since); its row numbers do not fit this one")


def check_report_exists(store: ObjectStore, run_prefix: Location) -> None:
    """``SetupError`` unless an earlier run published its report (``rows.parquet``) under ``run_prefix``."""
    if not store.exists(run_prefix.child("rows.parquet")):
        raise SetupError(f"--retry-failed: no report of that run under {run_prefix}")


def failed_rows_of(store: ObjectStore, run_prefix: Location, include_rejected: tuple[str, ...] = ()) -> frozenset[int]:
    """Row numbers an earlier run reported ``failed`` (for ``--retry-failed``), and those it rejected for one of
    the ``include_rejected`` reasons (``--include-rejected``) or, with any of them, ``no_identifying_document``."""
    check_report_exists(store, run_prefix)
    table = pq.read_table(io.BytesIO(store.read(run_prefix.child("rows.parquet"))),
                          columns=["row_number", "status", "reason_code"])
    wanted = pc.equal(table.column("status"), "failed")
    if include_rejected:
        # A party's address documents rejected no_identifying_document because its identifying one was rejected
        # for one of these reasons (the scan missing) come along: alone they would never be worked again.
        reasons = [*include_rejected, Reason.no_identifying_document.value]
        rejected = pc.and_(pc.equal(table.column("status"), "rejected"),
                           pc.is_in(table.column("reason_code"), pa.array(reasons, pa.string())))
        wanted = pc.or_kleene(wanted, rejected)
    return frozenset(table.filter(wanted).column("row_number").to_pylist())
