"""The document index on storage: one partition's records in the order they were written, and its compaction.

A partition (``<index>/<pp>/``) holds append-only segments (``seg-<time_ns>-<rand>.jsonl``, written by
:class:`connectors.ledger.Ledger`) and, once compacted, Parquet files (``compact-<time_ns>-<rand>.parquet``)
that hold every record of the segments they folded in, in a columnar form a reader filters by customer
without parsing the rest. Each compacted file names the segments it folded (file metadata); a reader takes
the records of every compacted file plus every segment no compacted file names, and orders them by where
they were first written (segment name, line), so the replay is the one the segments alone would give.

Compaction is safe next to writers and readers:
- it deletes only the segments it read and folded in, after the compacted file holding them is written, so
  a segment appended meanwhile stays and is read as a segment;
- a reader that finds an object gone between listing and reading (a compaction finished meanwhile) reads the
  partition again from a fresh listing, so it never sees a partition without either the segments or the
  compacted file holding them;
- two compactions of one partition at once each keep every record they read (a reader takes every compacted
  file, and records met twice count once), and the next compaction folds both files into one.
"""

from __future__ import annotations

import bisect
import io
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from connectors.errors import ObjectMissing
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.ledger_layout import (
    DEFAULT_SLOTS,
    keys_of,
    layout_of,
    row_groups,
    stored_columns,
    stored_customers,
    to_records,
    to_stored,
    write_options,
)

SEGMENT_PREFIX = "seg-"
COMPACT_PREFIX = "compact-"
_FOLDED_KEY = b"kyc_attach.folded_segments"
_READ_ATTEMPTS = 5

# The record keys with a column of their own; any other key (a field added later) is kept as JSON in "x", so
# compaction never drops what a newer writer recorded.
_SCHEMA = pa.schema([
    ("k", pa.string()),
    ("c", pa.string()),
    ("id", pa.string()),
    ("p", pa.string()),
    ("s", pa.string()),
    ("run", pa.string()),
    ("req", pa.string()),
    ("at", pa.float64()),
    ("t", pa.float64()),
    ("init", pa.bool_()),
    ("http", pa.int16()),
    ("o", pa.list_(pa.string())),
    ("src", pa.string()),
    ("etag", pa.string()),
    ("uri", pa.string()),
    ("x", pa.string()),
    # where the record was first written: the order of the replay
    ("seg", pa.string()),
    ("line", pa.int32()),
])
_COLUMNS = [f.name for f in _SCHEMA if f.name not in ("x", "seg", "line")]
_LOAD_COLUMNS = [f.name for f in _SCHEMA if f.name not in ("t", "o")]


@dataclass(frozen=True, slots=True)
class Compacted:
    """What one partition's compaction did."""

    partition: str
    segments_folded: int
    records: int
    bytes_before: int
    bytes_after: int


def partitions(store: ObjectStore, index_root: Location, *, to_compact: bool = False) -> list[str]:
    """The partitions that hold anything (names of the folders under the index), or with ``to_compact`` only
    those a compaction has work in (segments, or more than one compacted file), from one listing."""
    found: dict[str, list[str]] = {}
    for loc in store.list(index_root):
        rel = loc.key[len(index_root.key.rstrip("/")) + 1:]
        part, _, rest = rel.partition("/")
        if rest:
            found.setdefault(part, []).append(rest)
    if to_compact:
        return sorted(p for p, names in found.items()
                      if any(n.startswith(SEGMENT_PREFIX) for n in names)
                      or sum(n.startswith(COMPACT_PREFIX) for n in names) > 1)
    return sorted(found)


def read_records(store: ObjectStore, index_root: Location, part: str,
                 customers: Iterable[str] | None = None, *, history: bool = True,
                 keep: Callable[[pa.Table], pa.Array] | None = None) -> list[dict[str, Any]]:
    """Every record of one partition (only these customers' when given), in the order they were written.

    Without ``history``, records read from a compacted file lack what only the history needs (the time of the
    record, its source objects): the exactly-once rule does not read them and a shard loads faster. ``keep``
    picks (a boolean mask) the rows of a compacted file worth returning; records of segments are all returned."""
    wanted = None if customers is None else sorted(set(customers))
    for attempt in range(_READ_ATTEMPTS):
        try:
            return _read_once(store, index_root.child(part), wanted, None if history else _LOAD_COLUMNS, keep)
        except _Gone:
            if attempt == _READ_ATTEMPTS - 1:
                raise RuntimeError(f"ledger partition {part}: objects kept vanishing while it was read") from None
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


class _Gone(Exception):
    """An object listed a moment ago is not there any more."""


def _read_once(store: ObjectStore, folder: Location, customers: list[str] | None,
               columns: list[str] | None, keep: Callable[[pa.Table], pa.Array] | None = None,
               ) -> list[dict[str, Any]]:
    listed = store.list(folder)
    compacts = [loc for loc in listed if _name(loc).startswith(COMPACT_PREFIX)]
    segments = [loc for loc in listed if _name(loc).startswith(SEGMENT_PREFIX) and loc.key.endswith(".jsonl")]
    tables, folded = [], set()
    opened = [_parquet(_open(store, loc)) for loc in compacts]
    for pf in opened:
        folded |= _folded(pf)
    unfolded = [loc for loc in segments if _name(loc) not in folded]
    if columns is not None and len(opened) == 1 and not unfolded:
        columns = [c for c in columns if c not in ("seg", "line")]  # one file alone is in replay order
    for pf in opened:
        table = _read_compact(pf, customers, columns)[0]
        tables.append(table if keep is None else table.filter(keep(table)))
    if len(tables) == 1 and not unfolded:
        # the usual case once compacted: the file's rows are in replay order per customer already
        return _plain_rows(tables[0])
    keyed: dict[tuple[str, int], dict[str, Any]] = {}
    wanted = None if customers is None else set(customers)
    for table in tables:
        for rec in table.to_pylist():
            keyed[(rec["seg"], rec["line"])] = _plain(rec, compacted=True)
    for loc in unfolded:
        name = _name(loc)
        for line_no, line in enumerate(_read(store, loc).splitlines()):
            if line.strip():
                rec = json.loads(line)
                if wanted is None or rec.get("c") in wanted:
                    keyed[(name, line_no)] = rec
    return [_plain(rec) for _, rec in sorted(keyed.items(), key=lambda kv: kv[0])]


def compact_partition(store: ObjectStore, index_root: Location, part: str, *,
                      merge_at: int = 1, slots: int = DEFAULT_SLOTS) -> Compacted | None:
    """Fold one partition's segments into a compacted file; None when there was nothing to fold (no segment,
    at most one compacted file).

    While the partition holds fewer than ``merge_at`` compacted files, only the segments are folded, into a
    compacted file of their own (cheap: the large file is neither read nor rewritten); from ``merge_at`` on,
    every compacted file and segment is merged into one. A segment that is folded twice this way (a compaction
    stopped before deleting it) counts once: readers and merges keep one record per (segment, line).
    ``slots``: the planner's slot count, by which the file's rows are grouped (``transforms.ledger_layout``).
    """
    folder = index_root.child(part)
    for attempt in range(_READ_ATTEMPTS):
        listed = store.list(folder)
        compacts = [loc for loc in listed if _name(loc).startswith(COMPACT_PREFIX)]
        segments = [loc for loc in listed if _name(loc).startswith(SEGMENT_PREFIX) and loc.key.endswith(".jsonl")]
        if not segments and len(compacts) <= 1:
            return None
        if len(compacts) + 1 < merge_at:
            if not segments:
                return None
            compacts = []  # fold the segments alone: the compacted files stay as they are
        try:
            tables: list[pa.Table] = []
            folded_before: set[str] = set()
            bytes_before = 0
            for loc in compacts:
                data = _read(store, loc)
                bytes_before += len(data)
                table, names = _read_compact(data, None)
                folded_before |= names
                tables.append(table)
            rows: list[dict[str, Any]] = []
            for loc in segments:
                name = _name(loc)
                data = _read(store, loc)
                bytes_before += len(data)
                if name in folded_before:
                    continue  # a compaction that stopped before deleting it: its records are in a compacted file
                for line_no, line in enumerate(data.splitlines()):
                    if line.strip():
                        rows.append(_row(json.loads(line), name, line_no))
        except _Gone:
            if attempt == _READ_ATTEMPTS - 1:
                raise RuntimeError(f"ledger partition {part}: objects kept vanishing during compaction") from None
            time.sleep(0.05 * (attempt + 1))
            continue
        merged = pa.concat_tables([*tables, records_table(rows)]).combine_chunks()
        if len(tables) > 1:  # compactions that ran side by side folded some records twice: keep one
            merged = _first_of_each(merged)
        data = write_compact(merged, folded=[_name(s) for s in segments], slots=slots)
        name = f"{COMPACT_PREFIX}{time.time_ns():020d}-{secrets.token_hex(4)}.parquet"
        store.write(folder.child(name), data, content_type="application/vnd.apache.parquet")
        # Only what was read and is now held by the file just written goes: a segment appended since the
        # listing is not in ``segments`` and stays.
        for loc in [*segments, *compacts]:
            store.delete(loc)
        return Compacted(part, len(segments), merged.num_rows, bytes_before, len(data))
    raise AssertionError("unreachable")


def compact(store: ObjectStore, index_root: Location, parts: Iterable[str] | None = None, *,
            merge_at: int = 1, slots: int = DEFAULT_SLOTS) -> list[Compacted]:
    """Compact these partitions (default: every partition with work for a compaction); what each did.
    ``merge_at``, ``slots``: see :func:`compact_partition` (merge_at 1: merge everything into one file per
    partition)."""
    done = []
    for part in sorted(set(parts) if parts is not None else partitions(store, index_root, to_compact=True)):
        result = compact_partition(store, index_root, part, merge_at=merge_at, slots=slots)
        if result is not None:
            done.append(result)
    return done


def records_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Records (as :func:`_row` shapes them) as a table of the compacted layout."""
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def write_compact(table: pa.Table, *, folded: list[str], slots: int = DEFAULT_SLOTS) -> bytes:
    """A compacted file's bytes (the current layout, ``transforms.ledger_layout``): the records of ``table`` (the
    compacted layout's columns) and the names of the segments it folded."""
    stored = to_stored(table.select(_SCHEMA.names), slots)
    meta = {**stored.metadata, _FOLDED_KEY: json.dumps(folded).encode()}
    buf = io.BytesIO()
    pq.write_table(stored.table.replace_schema_metadata(meta), buf, **write_options())
    return buf.getvalue()


def _first_of_each(table: pa.Table) -> pa.Table:
    """One row per (segment, line)."""
    seen: set[tuple[str, int]] = set()
    keep = []
    for key in zip(table.column("seg").to_pylist(), table.column("line").to_pylist(), strict=True):
        keep.append(key not in seen)
        seen.add(key)
    return table.filter(pa.array(keep))


def _read_compact(data: bytes | pq.ParquetFile, customers: list[str] | None,
                  columns: list[str] | None = None) -> tuple[pa.Table, set[str]]:
    """A compacted file's rows (only these customers' when given: the row groups whose customer range holds
    none of them are not read) and the names of the segments it folded."""
    pf = _parquet(data)
    meta = pf.schema_arrow.metadata or {}
    folded = _folded(pf)
    if layout_of(meta) >= 2:
        return _read_stored(pf, meta, customers, columns), folded
    # layout 1: the records' own columns, rows sorted by customer
    if customers is None:
        return pf.read(columns=columns, use_threads=False), folded
    md = pf.metadata
    leaf = next((i for i in range(md.num_columns) if md.schema.column(i).path == "c"), None)
    groups = []
    for g in range(md.num_row_groups):
        stats = md.row_group(g).column(leaf).statistics if leaf is not None else None
        if stats is None or not stats.has_min_max:
            groups.append(g)
            continue
        i = bisect.bisect_left(customers, stats.min)
        if i < len(customers) and customers[i] <= stats.max:
            groups.append(g)
    table = (pf.read_row_groups(groups, columns=columns, use_threads=False) if groups
             else pf.schema_arrow.empty_table())
    if columns is not None and not groups:
        table = table.select(columns)
    return table.filter(pc.is_in(table.column("c"), pa.array(customers))), folded


def _parquet(data: bytes | pq.ParquetFile) -> pq.ParquetFile:
    return data if isinstance(data, pq.ParquetFile) else pq.ParquetFile(pa.BufferReader(data))


def _folded(pf: pq.ParquetFile) -> set[str]:
    """The names of the segments a compacted file folded."""
    return set(json.loads((pf.schema_arrow.metadata or {}).get(_FOLDED_KEY, b"[]")))


def _read_stored(pf: pq.ParquetFile, meta: dict[bytes, bytes], customers: list[str] | None,
                 columns: list[str] | None) -> pa.Table:
    """A layout-2 file's rows (only these customers': the row groups whose slot and customer ranges hold none
    of them are not read) in the compacted layout's columns."""
    names = list(columns) if columns is not None else _SCHEMA.names
    read = stored_columns(names)
    if customers is None:
        return to_records(pf.read(columns=read, use_threads=False), meta, names).cast(_schema_of(names))
    keys = keys_of(customers, meta)
    md = pf.metadata
    leaf = {md.schema.column(i).path: i for i in range(md.num_columns)}
    stats: list[tuple[int, int, Any, Any] | None] = []
    for g in range(md.num_row_groups):
        group = md.row_group(g)
        sb, sc = group.column(leaf["b"]).statistics, group.column(leaf["c"]).statistics
        known = sb is not None and sc is not None and sb.has_min_max and sc.has_min_max
        stats.append((sb.min, sb.max, sc.min, sc.max) if known else None)
    groups = row_groups(stats, keys) if keys else []
    if not groups:
        return _schema_of(names).empty_table()
    table = pf.read_row_groups(groups, columns=read, use_threads=False)
    table = table.filter(pc.is_in(table.column("c"), stored_customers(keys, meta)))
    return to_records(table, meta, names)


def _schema_of(names: list[str]) -> pa.Schema:
    return pa.schema([_SCHEMA.field(n) for n in names])


def _row(rec: dict[str, Any], seg: str, line: int) -> dict[str, Any]:
    """A record as a row of the compacted layout."""
    row: dict[str, Any] = {k: rec.get(k) for k in _COLUMNS}
    extra = {k: v for k, v in rec.items() if k not in _SCHEMA.names}
    row["x"] = json.dumps(extra, separators=(",", ":")) if extra else None
    row["seg"], row["line"] = seg, line
    return row


def _plain(rec: dict[str, Any], *, compacted: bool = False) -> dict[str, Any]:
    """A record without its empty fields, the same whether a segment or a compacted file held it."""
    if not compacted:
        return {k: v for k, v in rec.items() if v is not None}
    out = {k: rec[k] for k in _COLUMNS if rec.get(k) is not None}
    if rec.get("x"):
        out.update(json.loads(rec["x"]))
    return out


def _plain_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of a compacted file as records, as :func:`_plain` gives them (built column by column: a shard's
    load turns a few hundred rows of each of 256 partitions into records)."""
    names = [n for n in table.column_names if n in _COLUMNS]
    columns = [table.column(n).to_pylist() for n in names]
    extra = table.column("x").to_pylist() if "x" in table.column_names else [None] * table.num_rows
    out = []
    for values, x in zip(zip(*columns, strict=True), extra, strict=True):
        rec = {n: v for n, v in zip(names, values, strict=True) if v is not None}
        if x:
            rec.update(json.loads(x))
        out.append(rec)
    return out


def _name(loc: Location) -> str:
    return loc.key.rstrip("/").rpartition("/")[2]


def _open(store: ObjectStore, loc: Location) -> bytes | pq.ParquetFile:
    """A compacted file to read: a local one mapped (only the row groups read leave the disk), an S3 one whole."""
    if loc.is_s3:
        return _read(store, loc)
    try:
        return pq.ParquetFile(loc.key, memory_map=True)
    except FileNotFoundError:
        raise _Gone from None


def _read(store: ObjectStore, loc: Location) -> bytes:
    try:
        return store.read(loc)
    except (FileNotFoundError, ObjectMissing):
        raise _Gone from None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise _Gone from None
        raise
