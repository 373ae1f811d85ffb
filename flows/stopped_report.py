"""The report of a run that a check stopped after it began sending: every row still ends in it with one status.

The shards that wrote their report part keep their rows' outcomes; the rows of a shard that did not are
``failed`` / ``run_stopped`` (some may have been sent: their records are in the ledger, and the next run of the
manifest settles them). The report goes where a finished run's goes; when the report location refuses it (the
failed check may be that very write), it stays in the work folder instead. Wiring only.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.ledger import documents_root, ledger_secret
from connectors.objects import ObjectStore
from connectors.report_store import assemble_report, build_summary, publish_report
from connectors.s3 import Location
from connectors.work_folder import own_folder
from connectors.workarea import read_slot_range
from flows.plan import PlanResult
from flows.settings import Settings
from transforms.codes import Reason, Status
from transforms.outcomes import Outcomes, report_part

log = logging.getLogger("kyc_attach.flow")

#: Where a stopped run's report stays when the report location refuses it: ``<work_dir>/stopped-reports/<run_id>``.
KEPT_FOLDER = "stopped-reports"


def stopped_parts(plan: PlanResult, parts_dir: Path, stop: str) -> list[Path]:
    """The run's report parts: the plan's rejects, each shard's own part, and for a shard without one its rows
    as ``failed`` / ``run_stopped`` (the plan's rejected rows it carries are in the rejects part already)."""
    parts = [Path(plan.rejects_path)]
    for spec in plan.shards:
        part = parts_dir / f"{spec.name}.parquet"
        if not part.exists():
            rows = read_slot_range(spec.rows)
            rows = rows.filter(pc.is_null(rows.column("reason_code")))
            outcomes = Outcomes()
            outcomes.set(rows.column("row_number").to_pylist(), Status.failed, Reason.run_stopped, stop)
            part = parts_dir / f"{spec.name}.stopped.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(report_part(rows, outcomes), part)
        parts.append(part)
    return parts


def write_stopped_report(plan: PlanResult, *, settings: Settings, store: ObjectStore, run_dir: Path,
                         run_prefix: Location, job_ledger: Location, stop: str,
                         summary_extra: dict[str, object]) -> str:
    """Write the stopped run's report; returns where it is (the run's report location, or a local folder)."""
    parts = stopped_parts(plan, run_dir / "parts", stop)
    mask_secret = (ledger_secret(store, documents_root(job_ledger)) if settings.report_s3_uri == "hashed" else None)
    parquet_path, csv_path, table = assemble_report(parts, run_dir / "report", mask_secret=mask_secret)
    summary = build_summary(table, plan.rows_in, {**summary_extra, "stopped_early": stop})
    files = {"rows.parquet": parquet_path, "rows.csv": csv_path}
    try:
        publish_report(store, run_prefix, files, summary)
        return str(run_prefix)
    except Exception as exc:  # the report location refuses it: the report stays on this machine
        log.warning("report location refused the stopped run's report (%s); kept in the work folder",
                    type(exc).__name__)
    kept = own_folder(settings.work_dir, KEPT_FOLDER, str(summary["run_id"]), fresh=True)
    for name, path in files.items():
        shutil.copyfile(path, kept / name)
    (kept / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    return str(kept)
