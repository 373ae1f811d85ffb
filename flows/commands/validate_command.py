"""``kyc-attach validate``: the dry run's checks on the manifest alone, with no API and no S3 file reads.

It runs the real plan stage (row rules, sharding) into a throw-away work area and then the document rules
(grouping) on each shard, so what it reports is what a dry run would reject before touching any file.
Wiring only: the rules are ``transforms.validate`` and ``transforms.grouping``.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.manifest import Manifest, read_columns
from connectors.workarea import read_slot_range
from flows.plan import plan_manifest, readable
from transforms.grouping import group_documents
from transforms.mapping import DATE_COLUMNS, LegacyMapping
from transforms.rules import Rules

if TYPE_CHECKING:  # rich is imported when the summary is drawn
    from rich.console import Console


@dataclass
class ValidationResult:
    """Rows read, rows that pass every rule, and rejected rows counted by reason code."""

    rows: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    shards: int = 0
    # With a mapping: source values it left unconverted, by canonical column (codes; dates as 99.99.9999 shapes).
    unconverted: dict[str, Counter[str]] = field(default_factory=dict)
    # With a mapping: the date format its layout gives each date column (never proposed again by the hints).
    date_formats: dict[str, str] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def valid(self) -> int:
        return self.rows - self.rejected


def validate_manifest(manifest: Manifest, *, rules: Rules, batch_rows: int, slots: int, shard_rows: int,
                   mapping: LegacyMapping | None = None, work_dir: Path | None = None) -> ValidationResult:
    """Every row and document rule a dry run applies before it looks at files; ``SetupError`` on file problems."""
    with tempfile.TemporaryDirectory(prefix="kyc-validate-", dir=work_dir) as tmp:
        plan = plan_manifest(manifest, rules=rules, run_dir=Path(tmp), batch_rows=batch_rows, slots=slots,
                             shard_rows=shard_rows, mapping=mapping)
        result = ValidationResult(rows=plan.rows_in, shards=len(plan.shards),
                             unconverted=plan.mapping_report.unconverted if plan.mapping_report else {},
                             date_formats=_date_formats(manifest, mapping))
        rejects = pq.read_table(plan.rejects_path, columns=["row_number", "reason_code"])
        result.rejected_by_reason.update(_value_counts(rejects.column("reason_code")))
        seen = set(rejects.column("row_number").to_pylist())
        for spec in plan.shards:
            # Shards carry the plan's rejected rows too (so their documents' other rows are rejected with them);
            # those are counted above already.
            rows = read_slot_range(spec.rows)
            grouped = group_documents(rows, rules)
            result.rejected_by_reason.update(str(r.reason_code) for r in grouped.rejects if r.row_number not in seen)
    return result


def _date_formats(manifest: Manifest, mapping: LegacyMapping | None) -> dict[str, str]:
    """The date format of each date column of the layout that reads the manifest."""
    if mapping is None:
        return {}
    layout = mapping.layout_for(read_columns(readable(manifest, mapping)))
    return {c: fmt for c in DATE_COLUMNS if (fmt := layout.date_format_of(c))}


def _value_counts(col: pa.ChunkedArray) -> dict[str, int]:
    return {r["values"]: r["counts"] for r in pc.value_counts(pc.drop_null(col)).to_pylist()}


def today_utc() -> date:
    """The run date a real run would use (UTC), so validate judges expiry exactly as the run will."""
    from datetime import UTC, datetime

    return datetime.now(UTC).date()


def render_validation(result: ValidationResult, *, manifest: str, mapping: str | None,
                      console: object | None = None) -> None:
    """A short, readable summary for a person: counts, then rejections by reason with what each means."""
    from rich.console import Console
    from rich.table import Table

    from transforms.codes import REASON_MEANINGS, Reason

    out = console if isinstance(console, Console) else Console()
    out.print(f"[bold]Manifest[/bold] {manifest}" + (f"  [bold]mapping[/bold] {mapping}" if mapping else ""))
    share = f" ({result.rejected / result.rows:.1%})" if result.rows else ""
    out.print(f"rows {result.rows:,}   valid [green]{result.valid:,}[/green]   "
              f"rejected [red]{result.rejected:,}[/red]{share}   shards {result.shards}")
    if not result.rejected:
        out.print("[green]Every row passes the row and document checks.[/green] "
                  "Files are checked by a dry run (kyc-attach run --dry-run).")
        return
    table = Table(title="Rejected rows by reason", show_lines=False)
    table.add_column("reason", style="bold")
    table.add_column("rows", justify="right")
    table.add_column("meaning")
    for code, count in sorted(result.rejected_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        meaning = REASON_MEANINGS.get(Reason(code), "") if code in Reason.__members__ else ""
        table.add_row(code, f"{count:,}", meaning)
    out.print(table)
    _render_unconverted(out, result.unconverted, result.date_formats)
    out.print("Row-level detail (row number, field, reason): run a dry run and read its rows.csv.")


_SHOWN_VALUES = 20


def _render_unconverted(out: Console, unconverted: dict[str, Counter[str]], date_formats: dict[str, str]) -> None:
    """The source values the mapping did not convert, per column, with the mapping lines that would."""
    from rich.table import Table

    from transforms.mapping import unconverted_hint

    for column, counts in sorted(unconverted.items()):
        out.print(f"[bold]{column}[/bold]: source values the mapping did not convert")
        table = Table(show_lines=False)
        table.add_column("source value")
        table.add_column("archive rows", justify="right")
        for value, n in counts.most_common(_SHOWN_VALUES):
            table.add_row(value, f"{n:,}")
        if len(counts) > _SHOWN_VALUES:
            table.add_row(f"... {len(counts) - _SHOWN_VALUES} more", f"{sum(counts.values()):,} in all")
        out.print(table)
        out.print(unconverted_hint(column, [v for v, _ in counts.most_common(3)], date_formats.get(column)),
                  markup=False)


def validate_command(manifest: str, mapping: str | None) -> int:
    """What ``kyc-attach validate`` does; returns the exit code (0 all valid, 1 some rejected).

    ``SetupError`` (whole-file problems: unreadable, missing columns, no layout fits) propagates: exit 2.
    """
    from connectors.manifest import discard_local_copy, open_manifest
    from flows.run_rules import rules_from
    from flows.settings import load_settings
    from flows.stores import make_store

    settings = load_settings()
    needs_s3 = manifest.startswith("s3://") or (mapping or "").startswith("s3://")
    store = make_store(settings, s3=needs_s3, roles=("manifest",))
    loaded = None
    if mapping:  # the YAML reader is imported only for a mapping: start-up is what a person waits for here
        from connectors.mapping_file import load_mapping

        loaded = load_mapping(mapping, store)
    found = open_manifest(manifest, store=store.manifests(), cache_dir=settings.work_dir)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = validate_manifest(found, rules=rules_from(settings, today_utc()), batch_rows=settings.batch_rows,
                                slots=settings.max_shards, shard_rows=settings.shard_rows, mapping=loaded,
                                work_dir=settings.work_dir)
    finally:
        discard_local_copy(found, settings.work_dir)
    render_validation(result, manifest=manifest, mapping=mapping)
    return 1 if result.rejected else 0
