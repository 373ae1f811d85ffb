"""The run's local work area: bucket files of valid rows, report parts, payloads.

Shards are groups of buckets; a bucket holds every valid row of the customers that hash into it, so
all rows of a customer are in one shard. Files are Parquet, written incrementally so memory is bounded
by a record batch, not by the manifest.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Write buffer of each open bucket file (hundreds are open at once: 400 x 64 KiB = 25 MiB).
_FILE_BUFFER_BYTES = 64 << 10


class PartitionedWriter:
    """Appends tables to one Parquet file per partition number, opened on first use.

    Rows are held back until ``flush_rows`` of them are waiting (the slices given to ``write`` share the
    caller's buffers, so this costs no copy) and then written as one row group per partition: hundreds of
    partitions fed batch by batch would otherwise make tiny row groups, which are slow to write and to read.
    Memory is bounded by ``flush_rows`` rows, not by what goes through.
    """

    def __init__(self, folder: Path, schema: pa.Schema, *, prefix: str = "b", flush_rows: int = 524_288) -> None:
        self.folder = folder
        self.schema = schema
        self._prefix = prefix
        self._flush_rows = flush_rows
        self._writers: dict[int, pq.ParquetWriter] = {}
        self._sinks: dict[int, pa.NativeFile] = {}
        self._pending: dict[int, list[pa.Table]] = {}
        self._pending_rows = 0
        folder.mkdir(parents=True, exist_ok=True)

    def path_of(self, part: int) -> Path:
        return self.folder / f"{self._prefix}{part:04d}.parquet"

    def write(self, part: int, table: pa.Table) -> None:
        """Append rows to a partition's file (written out at the next flush)."""
        if not table.num_rows:
            return
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        self._pending.setdefault(part, []).append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self._flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write every partition's waiting rows as one row group each."""
        for part, tables in self._pending.items():
            writer = self._writers.get(part)
            if writer is None:
                # Work files, read whole once by their shard: no statistics, no dictionaries, LZ4 write ~2x
                # faster than the defaults (Snappy, dictionaries, statistics) for about the same size.
                # A small buffer per file: unbuffered, every page of every column is its own write() syscall.
                sink = self._sinks[part] = pa.output_stream(str(self.path_of(part)), buffer_size=_FILE_BUFFER_BYTES)
                writer = self._writers[part] = pq.ParquetWriter(
                    sink, self.schema, compression="lz4", use_dictionary=False, write_statistics=False
                )
            writer.write_table(pa.concat_tables(tables), row_group_size=1 << 30)
        self._pending.clear()
        self._pending_rows = 0
        # The flushed rows' buffers are free now: hand the allocator's cached pages back to the OS, or RSS keeps
        # the high-water mark of every flush (mimalloc and jemalloc both cache freed pages).
        pa.default_memory_pool().release_unused()

    def close(self) -> list[int]:
        """Write what waits, close every file; returns the partitions that got rows."""
        self.flush()
        for part, writer in self._writers.items():
            writer.close()
            self._sinks[part].close()  # the writer does not close a stream it was given
        return sorted(self._writers)


class TableWriter:
    """Appends tables to a single Parquet file, created even when nothing is written."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.schema = schema
        self._writer = pq.ParquetWriter(path, schema)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.select(self.schema.names).cast(self.schema))

    def close(self) -> None:
        self._writer.close()


def read_parts(paths: list[Path]) -> pa.Table:
    """The rows of several Parquet files as one table."""
    return pa.concat_tables([pq.read_table(p) for p in paths]) if paths else pa.table({})
