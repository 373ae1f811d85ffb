"""The plan stage: read the manifest in batches, validate, and split valid rows into shards.

Wiring only: the rules are ``transforms.validate`` and ``transforms.sharding``; the files are
``connectors.manifest`` and ``connectors.workarea``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.errors import SetupError
from connectors.manifest import Manifest, iter_batches, read_columns
from connectors.workarea import PartitionedWriter, TableWriter
from transforms.codes import Status
from transforms.mapping import Mapping, MappingError, apply_mapping
from transforms.report import REPORT_SCHEMA
from transforms.rules import Rules
from transforms.shard_plan import group_buckets
from transforms.sharding import shard_of
from transforms.validate import VALIDATED_SCHEMA, check_columns, validate_batch


@dataclass(frozen=True)
class ShardSpec:
    """A shard: a name that is stable for a job (it keys the ledger) and its bucket files."""

    name: str
    files: tuple[str, ...]


@dataclass
class PlanResult:
    """What the plan stage produced, as references (paths), never as data."""

    job_id: str
    rows_in: int
    rows_rejected: int
    rejects_path: str
    shards: list[ShardSpec] = field(default_factory=list)


def check_manifest_columns(manifest: Manifest, mapping: Mapping | None = None) -> None:
    """``SetupError`` naming every missing required column (after the mapping, if any): the run must not start."""
    columns = read_columns(manifest)
    if mapping is not None:
        try:
            columns = mapping.mapped_columns(columns)
        except MappingError as exc:
            raise SetupError(str(exc)) from None
    problems = check_columns(columns)
    if problems:
        raise SetupError("manifest: " + "; ".join(problems))


def plan_manifest(manifest: Manifest, *, rules: Rules, run_dir: Path, batch_rows: int, buckets: int,
                  shard_rows: int, mapping: Mapping | None = None) -> PlanResult:
    """Validate every row and write valid rows into per-bucket files and rejects into a report part.

    With a ``mapping`` (legacy archives), each batch is first turned into canonical columns.
    """
    check_manifest_columns(manifest, mapping)
    valid = PartitionedWriter(run_dir / "buckets", VALIDATED_SCHEMA)
    rejects = TableWriter(run_dir / "parts" / "rejects.parquet", REPORT_SCHEMA)
    # Shards are formed from the rows' raw bucket counts, not from what validation kept: validation
    # depends on the run date, and shard names key the ledger, so they must not move between runs.
    counts = np.zeros(buckets, dtype=np.int64)
    rows_in = rows_rejected = 0
    for batch in iter_batches(manifest, batch_rows=batch_rows):
        if mapping is not None:
            batch = apply_mapping(batch, mapping)
        checked = validate_batch(batch, rules=rules, first_row_number=rows_in + 1).select(VALIDATED_SCHEMA.names)
        rows_in += checked.num_rows
        bucket = shard_of(checked.column("customer_id"), buckets)
        counts += np.bincount(np.asarray(bucket.to_numpy(zero_copy_only=False)), minlength=buckets)
        bad = pc.is_valid(checked.column("reason_code"))
        bad_rows = checked.filter(bad)
        rows_rejected += bad_rows.num_rows
        rejects.write(_as_report(bad_rows))
        # Rejected rows go to their shard too (and to the report part): a document's other rows must see them to
        # be rejected with them (document_rejected); the shard reports only the rows without a reason.
        keep = pc.is_valid(bucket)
        good_rows = checked.filter(keep)
        if good_rows.num_rows:
            good_bucket = np.asarray(bucket.filter(keep).to_numpy(zero_copy_only=False))
            order = np.argsort(good_bucket, kind="stable")
            sorted_rows, sorted_bucket = good_rows.take(pa.array(order)), good_bucket[order]
            starts = np.flatnonzero(np.diff(sorted_bucket, prepend=-1))
            ends = np.append(starts[1:], len(sorted_bucket))
            for s, e in zip(starts, ends, strict=True):
                valid.write(int(sorted_bucket[s]), sorted_rows.slice(int(s), int(e - s)))
    rejects.close()
    written = set(valid.close())
    shards = []
    for first, last in group_buckets(counts.tolist(), shard_rows):
        files = tuple(str(valid.path_of(b)) for b in range(first, last + 1) if b in written)
        if files:
            shards.append(ShardSpec(f"b{first:04d}-{last:04d}", files))
    return PlanResult(manifest.job_id, rows_in, rows_rejected, str(rejects.path), shards)


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
