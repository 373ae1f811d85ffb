"""The run's local work area: bucket files of valid rows, report parts, payloads.

Shards are groups of buckets; a bucket holds every valid row of the customers that hash into it, so
all rows of a customer are in one shard. Files are Parquet, written incrementally so memory is bounded
by a record batch, not by the manifest.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


class PartitionedWriter:
    """Appends record batches to one Parquet file per partition number, opened on first use."""

    def __init__(self, folder: Path, schema: pa.Schema, *, prefix: str = "b") -> None:
        self.folder = folder
        self.schema = schema
        self._prefix = prefix
        self._writers: dict[int, pq.ParquetWriter] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def path_of(self, part: int) -> Path:
        return self.folder / f"{self._prefix}{part:04d}.parquet"

    def write(self, part: int, table: pa.Table) -> None:
        """Append rows to a partition's file."""
        writer = self._writers.get(part)
        if writer is None:
            writer = self._writers[part] = pq.ParquetWriter(self.path_of(part), self.schema)
        writer.write_table(table.select(self.schema.names).cast(self.schema))

    def close(self) -> list[int]:
        """Close every file; returns the partitions that got rows."""
        for writer in self._writers.values():
            writer.close()
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
