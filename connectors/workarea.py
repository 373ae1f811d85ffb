"""The run's local work area: the plan's rows file, report parts, payloads.

The plan writes every row a shard needs into one Arrow IPC file, batch by batch, each batch sorted by hash
slot, and an index of where each slot starts in each batch. A shard is a range of slots, so its rows
are one contiguous slice of every batch: read through a memory map, without a copy of anything else.
All rows of a customer share a slot, so they are in one shard. Report parts are Parquet.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq


@dataclass(frozen=True)
class SlotRange:
    """Where a shard's rows are: slots ``first`` to ``stop - 1`` of a rows file (a reference, never data).

    Without an index the range is the whole file (a shard's rows copied out on their own, for fan-out).
    """

    rows_file: str
    index_file: str | None = None
    first: int = 0
    stop: int = 0


class RowsFileWriter:
    """Appends batches already sorted by slot to one Arrow IPC file, and records each slot's offsets.

    Why one IPC file: the plan's output is scratch, read once by the shards on this machine. Writing a batch
    is a copy of its buffers into the file, where Parquet's encoding and compression cost ~0.8 CPU-s per
    million rows (a third of the plan stage), and one sequential file replaces hundreds of open per-slot files
    and the copies that joined their pieces. The price is disk: ~250 bytes per row against Parquet's ~70, in
    the run folder, which is removed when the run ends; ``compression`` (lz4, zstd) trades CPU for it.
    """

    def __init__(self, path: Path, schema: pa.Schema, slots: int, *, compression: str = "none") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.index_path = path.with_suffix(".index.npy")
        self.schema = schema
        self._slots = slots
        self._writer = ipc.new_file(str(path), schema, options=_write_options(compression))
        self._bounds: list[np.ndarray] = []

    def write(self, rows: pa.Table, slot_of_row: np.ndarray) -> None:
        """Append one batch; ``slot_of_row`` must be sorted (ascending), one entry per row."""
        if not rows.num_rows:
            return
        # bounds[s] is the batch's first row of slot s; bounds[slots] its row count.
        bounds = np.searchsorted(slot_of_row, np.arange(self._slots + 1), side="left").astype(np.int32)
        self._writer.write_batch(rows.combine_chunks().to_batches()[0])
        self._bounds.append(bounds)

    def close(self) -> None:
        """Finish the file and write the index."""
        self._writer.close()
        np.save(self.index_path, np.stack(self._bounds) if self._bounds else np.zeros((0, self._slots + 1), np.int32))

    def range(self, first: int, last: int) -> SlotRange:
        """The reference to slots ``first`` to ``last`` (inclusive)."""
        return SlotRange(str(self.path), str(self.index_path), first, last + 1)


def _write_options(compression: str) -> ipc.IpcWriteOptions:
    """IPC write options: buffers compressed with ``compression`` (lz4 or zstd), or not at all ("none")."""
    return ipc.IpcWriteOptions(compression=None if compression == "none" else compression)


def is_disk_full(exc: OSError) -> bool:
    """Whether a write failed for lack of space (Arrow's IO errors carry the OS message, not always errno)."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)


def read_slot_range(ref: SlotRange, columns: Sequence[str] | None = None) -> pa.Table:
    """A shard's rows as one table, in the order the plan wrote them (batch by batch, slot by slot)."""
    with pa.memory_map(ref.rows_file) as source:
        reader = ipc.open_file(source)
        if ref.index_file is None:
            table = reader.read_all()
        else:
            bounds = np.load(ref.index_file, mmap_mode="r")
            starts, stops = np.asarray(bounds[:, ref.first]), np.asarray(bounds[:, ref.stop])
            pieces = [reader.get_batch(int(i)).slice(int(starts[i]), int(stops[i] - starts[i]))
                      for i in np.flatnonzero(stops > starts)]
            table = pa.Table.from_batches(pieces, schema=reader.schema)
        if columns is not None:
            table = table.select(list(columns))
        # Copied out of the mapped file: the shard's rows are small, and the run folder can then go.
        return table.combine_chunks()


def write_slot_range(ref: SlotRange, dest: Path, *, compression: str = "none") -> SlotRange:
    """A shard's rows copied into a file of their own (to ship to another machine); the whole-file reference."""
    table = read_slot_range(ref)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with ipc.new_file(str(dest), table.schema, options=_write_options(compression)) as writer:
        writer.write_table(table)
    return SlotRange(str(dest))


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
