"""The plan stage: read the manifest in batches, validate, and split valid rows into shards.

Wiring only: the rules are ``transforms.validate`` and ``transforms.sharding``; the files are
``connectors.manifest`` and ``connectors.workarea``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.errors import SetupError
from connectors.manifest import Manifest, iter_batches, nested_parquet_columns, read_columns, with_dialect
from connectors.report_store import CARRIED_FILE
from connectors.workarea import RowsFileWriter, SlotRange, TableWriter, is_disk_full
from transforms.codes import Status
from transforms.mapping import (
    Layout,
    LegacyMapping,
    MappingError,
    MappingReport,
    apply_mapping,
    explain_date_rejects,
    split_carried,
)
from transforms.report import REPORT_SCHEMA, mask_broken_cells
from transforms.rules import Rules
from transforms.shard_plan import group_slots
from transforms.sharding import slot_of_row
from transforms.validate import VALIDATED_SCHEMA, check_columns, validate_batch

# Two validation threads on top of the reading/writing one: most of the work is in Arrow kernels outside the GIL.
_PLAN_THREADS = 2


@dataclass(frozen=True)
class ShardSpec:
    """A shard: a name that is stable for a job (it keys the ledger) and where its rows are."""

    name: str
    rows: SlotRange


@dataclass
class PlanResult:
    """What the plan stage produced, as references (paths), never as data."""

    job_id: str
    rows_in: int
    rows_rejected: int
    rejects_path: str
    shards: list[ShardSpec] = field(default_factory=list)
    # With a mapping: the source values it could not convert (codes and date patterns only), for `validate`.
    mapping_report: MappingReport | None = None
    # The fingerprint of the mapping the rows were read through (`LegacyMapping.digest`), kept in the job's marker.
    mapping_digest: str | None = None


def readable(manifest: Manifest, mapping: LegacyMapping | None) -> Manifest:
    """The manifest with the CSV dialect to read it by: UTF-8 and commas, or a legacy archive's (its mapping's
    encoding and delimiter, else detected)."""
    if mapping is None:
        return manifest
    return with_dialect(manifest, encoding=mapping.encoding, delimiter=mapping.delimiter)


def require_columns(manifest: Manifest, mapping: LegacyMapping | None = None) -> Manifest:
    """``SetupError`` naming every missing required column (after the mapping, if any): the run must not start.

    Returns the manifest as it is to be read (``readable``)."""
    manifest = readable(manifest, mapping)
    columns = read_columns(manifest)
    if mapping is not None:
        try:
            layout = mapping.layout_for(columns, encoding=manifest.encoding)
        except MappingError as exc:
            raise SetupError(str(exc)) from None
        nested = set(nested_parquet_columns(manifest))
        for source in layout.source_columns():
            if source.strip().lower() in nested:
                raise SetupError(f"manifest: Parquet column '{source}' has a nested type; the mapping reads it as "
                                 "text, which it is not")
        columns = mapping.mapped_columns(columns)
    problems = check_columns(columns)
    if problems:
        raise SetupError("manifest: " + "; ".join(problems))
    return manifest


def plan_manifest(manifest: Manifest, *, rules: Rules, run_dir: Path, batch_rows: int, slots: int,
                  shard_rows: int, mapping: LegacyMapping | None = None, compression: str = "none") -> PlanResult:
    """Validate every row; write the rows shards need into the run's rows file and rejects into a report part.

    With a ``mapping`` (legacy archives), each batch is first turned into canonical columns. ``compression``
    is the rows file's (none, lz4, zstd).
    """
    manifest = require_columns(manifest, mapping)
    try:
        with _plan_memory_pool():
            return _plan(manifest, rules=rules, run_dir=run_dir, batch_rows=batch_rows, slots=slots,
                         shard_rows=shard_rows, mapping=mapping, compression=compression)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        # Nothing was sent yet (the plan comes first): a setup problem with a remedy, not a crash.
        raise SetupError("work folder: the disk filled up while writing the plan's rows file (~250 bytes a row); "
                         "free space there or point KYC_ATTACH_WORK_DIR at a larger disk") from None


@contextmanager
def _plan_memory_pool() -> Iterator[None]:
    """Arrow's jemalloc pool for the plan stage, unless ``ARROW_DEFAULT_MEMORY_POOL`` chose one.

    The stage allocates and frees a batch's worth of buffers per batch from three threads. The wheel's default
    pool (mimalloc) hands freed pages back to the OS at once and faults them in again: on the plan benchmark
    jemalloc halved the system time and cut the stage's CPU by ~8% and its peak RSS by ~5%. Buffers remember
    their pool, so switching back afterwards is safe.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        yield
        return
    previous = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (pa.ArrowNotImplementedError, NotImplementedError):
        yield  # a build without jemalloc
        return
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def _plan(manifest: Manifest, *, rules: Rules, run_dir: Path, batch_rows: int, slots: int,
          shard_rows: int, mapping: LegacyMapping | None, compression: str) -> PlanResult:
    valid = RowsFileWriter(run_dir / "rows.arrow", VALIDATED_SCHEMA, slots, compression=compression)
    rejects = TableWriter(run_dir / "parts" / "rejects.parquet", REPORT_SCHEMA)
    # Shards are formed from the rows' raw slot counts, not from what validation kept: validation
    # depends on the run date, and shard names key the ledger, so they must not move between runs.
    counts = np.zeros(slots, dtype=np.int64)
    rows_in = rows_rejected = source_rows = 0
    report = MappingReport() if mapping is not None else None
    layout = mapping.layout_for(read_columns(manifest)) if mapping is not None else None
    carried_path = run_dir / CARRIED_FILE
    carried_path.unlink(missing_ok=True)  # an earlier plan of this run may have carried other columns
    # With a mapping, each row's place in the archive (and a mapping's carried columns) goes to the report.
    carried = TableWriter(carried_path, _carried_schema(layout)) if layout is not None else None

    def consume(done: _Prepared) -> None:
        nonlocal counts, rows_rejected
        counts += np.bincount(done.slots, minlength=slots)
        rows_rejected += done.rejects.num_rows
        rejects.write(done.rejects)
        valid.write(done.rows, done.slots)

    # Validation is a chain of Arrow kernels that release the GIL: two batches are validated side by side
    # while this thread reads the next one and writes finished ones, in order. The look-ahead is bounded,
    # so memory stays a few batches whatever the manifest's size.
    with ThreadPoolExecutor(max_workers=_PLAN_THREADS, thread_name_prefix="plan") as pool:
        pending: deque[Future[_Prepared]] = deque()
        for batch in iter_batches(manifest, batch_rows=batch_rows):
            if mapping is not None:
                # Here, not on the validation threads: a layout with files makes more rows than the source had,
                # and row numbers must be known before a batch is handed on. Legacy archives only.
                first, source_rows = source_rows + 1, source_rows + batch.num_rows
                batch = apply_mapping(batch, mapping, first_source_row=first, report=report, with_source_row=True)
                assert layout is not None
                batch, kept = split_carried(batch, layout)
                if carried is not None and kept is not None:  # row numbers as validation will give them
                    numbers = np.arange(rows_in + 1, rows_in + 1 + batch.num_rows, dtype=np.int64)
                    kept = kept.add_column(0, "source_file", pa.array([manifest.location] * batch.num_rows))
                    carried.write(kept.add_column(0, "row_number", pa.array(numbers)))
            pending.append(pool.submit(_prepare, batch, rules, rows_in + 1, slots, layout))
            rows_in += batch.num_rows
            if len(pending) > _PLAN_THREADS:
                consume(pending.popleft().result())
        while pending:
            consume(pending.popleft().result())
    rejects.close()
    valid.close()
    if carried is not None:
        carried.close()
    # A shard's name is its slot range written as it always was ("b0000-0015"): names key the ledger.
    shards = [ShardSpec(f"b{first:04d}-{last:04d}", valid.range(first, last))
              for first, last in group_slots(counts.tolist(), shard_rows) if counts[first:last + 1].any()]
    return PlanResult(manifest.job_id, rows_in, rows_rejected, str(rejects.path), shards, report)


def _carried_schema(layout: Layout) -> pa.Schema:
    """The plan's side file for the report: row number, source file and row, generated document id, carried."""
    generated = ["document_id"] if layout.files and "document_id" not in layout.columns else []
    return pa.schema([("row_number", pa.int64()), ("source_file", pa.string()), ("source_row", pa.int64()),
                      *((c, pa.string()) for c in [*generated, *layout.carry_columns])])


@dataclass
class _Prepared:
    """One validated batch: its rejects in report shape, and the rows shards need, sorted by slot."""

    rejects: pa.Table
    rows: pa.Table
    slots: np.ndarray  # hash slot of each row of ``rows`` (ascending)


def _prepare(batch: pa.Table, rules: Rules, first_row_number: int, slots: int, layout: Layout | None) -> _Prepared:
    validated = validate_batch(batch, rules=rules, first_row_number=first_row_number, bad_fields=True)
    if layout is not None:
        validated = explain_date_rejects(validated, layout)
    # Slots are taken of the normalised id, so every spelling of a customer's id lands in one shard. A row
    # without a customer id (rejected anyway) has slot -1: no shard, and outside the counts.
    slot = slot_of_row(validated.column("customer_id"), slots)
    checked = validated.select(VALIDATED_SCHEMA.names)
    bad = np.asarray(pc.is_valid(checked.column("reason_code")))
    # Rejected rows go to their shard too (and to the report part): a document's other rows must see them to be
    # rejected with them (document_rejected); the shard reports only the rows without a reason.
    good = np.flatnonzero(slot >= 0)
    # One take gathers the shard rows sorted by slot: a shard's rows are then one slice of the batch.
    order = good[np.argsort(slot[good], kind="stable")]
    rows = checked.take(pa.array(order))
    # Filter only the columns reported; a cell whose value broke a rule is masked (it may be personal data).
    rejected = pa.array(bad)
    broken = np.asarray(validated.column("bad_fields").filter(rejected))
    rejects = _as_report(mask_broken_cells(checked.select(_REPORTED).filter(rejected), broken))
    return _Prepared(rejects, rows, slot[order])


_REPORTED = ("row_number", "customer_id", "associated_party_id", "document_type", "side", "s3_uri", "reason_code",
             "message")


def _as_report(rows: pa.Table) -> pa.Table:
    """Rejected rows in the report's shape."""
    n = rows.num_rows
    return pa.table(
        {
            "row_number": rows.column("row_number"),
            "customer_id": rows.column("customer_id"),
            "associated_party_id": rows.column("associated_party_id"),
            "document_type": rows.column("document_type"),
            "side": rows.column("side"),
            "s3_uri": rows.column("s3_uri"),
            "status": pa.array([Status.rejected.value] * n, pa.string()),
            "reason_code": rows.column("reason_code"),
            "message": rows.column("message"),
            "uri": pa.nulls(n, pa.string()),
            "http_status": pa.nulls(n, pa.int32()),
            "attempts": pa.array(np.zeros(n, dtype=np.int32)),
        }
    )
