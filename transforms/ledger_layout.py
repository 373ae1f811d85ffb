"""How the compacted document index lays a partition's records out in Parquet (pure): what a file stores, how it
reads back, and which row groups a look-up needs.

Layout 2 (the file's metadata says ``kyc_attach.layout: 2``; a compacted file without it is layout 1 and is read
as it is):
- every row carries its customer's hash slot (``transforms.sharding.slots_of`` with the slot count of the
  planner, kept in the metadata), and rows are sorted by slot, customer, segment, line. A shard is a range of
  slots, so in every partition its customers sit side by side in one or two row groups, which a reader picks
  by the slot and customer statistics (the only statistics kept: the footer stays small and opens fast);
- a column whose every value is a canonical uuid (customer, party) or lower-case hex of one even length
  (document key, ETag, request id) is stored as its bytes, half the size before compression;
- a record's time is stored as its distance from the send time of its request where that distance gives the
  time back exactly (both are epoch seconds a fraction of a second apart), else as it is;
- the line numbers are delta-coded, the source objects prefix-coded (one customer's files share their path),
  the times split by byte, every column zstd-compressed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.sharding import slots_of
from transforms.uuids import is_uuid

LAYOUT = 2
LAYOUT_KEY = b"kyc_attach.layout"
SLOTS_KEY = b"kyc_attach.slots"
PACKED_KEY = b"kyc_attach.packed"
# The planner's slot count by default (``max_shards``): a shard is a range of these slots.
DEFAULT_SLOTS = 400
SLOT = "b"
DELTA = "dt"
# A look-up of one shard's customers reads one or two of these per partition; smaller groups cost more to open
# than they save in decoding (bench/bench_ledger.py).
ROW_GROUP_ROWS = 4096

_UUID_COLUMNS = ("c", "p")
_HEX_COLUMNS = ("id", "etag", "req")
_HEX_RE = r"^([0-9a-f]{2})+$"
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# where each character of a uuid's text comes from in its 32 hex digits (the dashes are written over)
_UUID_DASHES = [8, 13, 18, 23]
_UUID_DIGITS = [i for i in range(36) if i not in _UUID_DASHES]
_UUID_PLACES = [0, 1, 2, 3, 4, 5, 6, 7, 0, 8, 9, 10, 11, 0, 12, 13, 14, 15, 0, 16, 17, 18, 19, 0,
                *range(20, 32)]


@dataclass(frozen=True, slots=True)
class Stored:
    """A partition's records as a layout-2 file stores them, with the file metadata that says how to read them."""

    table: pa.Table
    metadata: dict[bytes, bytes]


def write_options() -> dict[str, Any]:
    """``pyarrow.parquet.write_table`` options of layout 2."""
    return {
        "compression": "zstd",
        "row_group_size": ROW_GROUP_ROWS,
        "write_statistics": [SLOT, "c"],
        "use_dictionary": ["k", "s", "c", "p", "run", "seg", SLOT],
        "column_encoding": {"line": "DELTA_BINARY_PACKED", "t": "BYTE_STREAM_SPLIT", DELTA: "BYTE_STREAM_SPLIT",
                            "src": "DELTA_BYTE_ARRAY", "o.list.element": "DELTA_BYTE_ARRAY"},
    }


def to_stored(table: pa.Table, slots: int = DEFAULT_SLOTS) -> Stored:
    """Records in the compacted layout's columns (``t`` and ``at`` epoch seconds, ids as text) as layout 2 stores
    them, sorted by slot, customer, segment, line."""
    if slots < 1:
        raise ValueError("slots: must be at least 1")
    packed: dict[str, str] = {}
    customers = table.column("c").combine_chunks()
    table = table.append_column(SLOT, pa.array(slots_of(customers, slots).astype(np.int32)))
    t, at = table.column("t").combine_chunks(), table.column("at").combine_chunks()
    delta = pc.subtract(t, at)
    exact = pc.fill_null(pc.equal(pc.add(at, delta), t), False)
    none = pa.scalar(None, pa.float64())
    table = table.set_column(table.schema.get_field_index("t"), "t", pc.if_else(exact, none, t))
    table = table.append_column(DELTA, pc.if_else(exact, delta, none))
    for name in _UUID_COLUMNS + _HEX_COLUMNS:
        column = table.column(name).combine_chunks()
        kind = _packing(column, uuid_text=name in _UUID_COLUMNS)
        if kind is not None:
            packed[name] = kind
            table = table.set_column(table.schema.get_field_index(name), name, _pack(column, kind))
    table = table.sort_by([(SLOT, "ascending"), ("c", "ascending"), ("seg", "ascending"), ("line", "ascending")])
    meta = {LAYOUT_KEY: str(LAYOUT).encode(), SLOTS_KEY: str(slots).encode(),
            PACKED_KEY: json.dumps(packed, sort_keys=True).encode()}
    return Stored(table, meta)


def layout_of(metadata: dict[bytes, bytes] | None) -> int:
    """The layout a compacted file's metadata says it has (1: written before layouts had a number)."""
    return int((metadata or {}).get(LAYOUT_KEY, b"1"))


def stored_columns(columns: Iterable[str]) -> list[str]:
    """The columns of a layout-2 file that hold these record columns (a record's time needs its send time)."""
    out = list(columns)
    if "t" in out:
        out += [c for c in ("at", DELTA) if c not in out]
    return out


def to_records(table: pa.Table, metadata: dict[bytes, bytes], columns: Iterable[str]) -> pa.Table:
    """Rows of a layout-2 file back in the compacted layout's columns (only ``columns``, in that order)."""
    packed: dict[str, str] = json.loads(metadata.get(PACKED_KEY, b"{}"))
    wanted = list(columns)
    out = []
    for name in wanted:
        if name == "t":
            t, delta = table.column("t"), table.column(DELTA)
            out.append(pc.if_else(pc.is_null(t), pc.add(table.column("at"), delta), t))
        elif name in packed:
            out.append(_unpack(table.column(name).combine_chunks(), packed[name]))
        else:
            out.append(table.column(name))
    return pa.table(out, names=wanted)


def keys_of(customers: list[str], metadata: dict[bytes, bytes]) -> list[tuple[int, Any]]:
    """The (slot, stored customer) of each customer a layout-2 file could hold, sorted; a customer the file's
    packing cannot hold (not a uuid where every customer of the file is one) is left out: it is not there."""
    if not customers:
        return []
    packed: dict[str, str] = json.loads(metadata.get(PACKED_KEY, b"{}"))
    ids = pa.array(customers, pa.string())
    canonical = is_uuid(ids)
    slots = slots_of(ids, int(metadata[SLOTS_KEY]), canonical).tolist()
    if "c" not in packed:
        return sorted(zip(slots, customers, strict=True))
    return sorted((b, bytes.fromhex(c.replace("-", "")))
                  for b, c, ok in zip(slots, customers, canonical.tolist(), strict=True) if ok)


def row_groups(stats: list[tuple[int, int, Any, Any] | None], keys: list[tuple[int, Any]]) -> list[int]:
    """The row groups that may hold one of these keys, given each group's (lowest slot, highest slot,
    lowest customer, highest customer); a group without statistics is given as None and always read."""
    chosen = []
    for g, group in enumerate(stats):
        if group is None:
            chosen.append(g)
            continue
        b_lo, b_hi, c_lo, c_hi = group
        if any(b_lo <= b <= b_hi and c_lo <= c <= c_hi for b, c in keys):
            chosen.append(g)
    return chosen


def stored_customers(keys: list[tuple[int, Any]], metadata: dict[bytes, bytes]) -> pa.Array:
    """The stored customer values of these keys, to filter a file's rows by."""
    packed: dict[str, str] = json.loads(metadata.get(PACKED_KEY, b"{}"))
    values = [c for _, c in keys]
    return pa.array(values, pa.binary(16) if "c" in packed else pa.string())


def _packing(column: pa.Array, *, uuid_text: bool) -> str | None:
    """``uuid`` or ``hex<bytes>`` when every value of the column can be stored as its bytes, else None."""
    if column.null_count == len(column):
        return None
    present = column.drop_null()
    if uuid_text:
        return "uuid" if bool(is_uuid(present).all()) else None
    lengths = pc.utf8_length(present)
    lo, hi = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if lo != hi or not pc.all(pc.match_substring_regex(present, _HEX_RE)).as_py():
        return None
    return f"hex{lo // 2}"


def _pack(column: pa.Array, kind: str) -> pa.Array:
    """Text to its bytes (vectorised: a merge packs every row of a partition). The caller has checked that every
    value is a canonical uuid, or hex of one length."""
    width = 16 if kind == "uuid" else int(kind.removeprefix("hex"))
    size = 36 if kind == "uuid" else 2 * width
    filled = pc.fill_null(column, "0" * size) if column.null_count else column
    n = len(filled)
    offsets = np.frombuffer(filled.buffers()[1], dtype=np.int32, count=n + 1, offset=filled.offset * 4)
    text = np.frombuffer(filled.buffers()[2], dtype=np.uint8, count=size * n, offset=int(offsets[0]))
    text = text.reshape(n, size)
    if kind == "uuid":
        text = text[:, _UUID_DIGITS]
    # a hex digit's value is its low nibble, plus 9 for 'a'-'f' (bit 6 set)
    nibbles = (text & 0x0F) + 9 * ((text >> 6) & 1)
    raw = ((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).astype(np.uint8)
    validity = column.is_valid().buffers()[1] if column.null_count else None
    return pa.Array.from_buffers(pa.binary(width), n, [validity, pa.py_buffer(raw.tobytes())],
                                 null_count=column.null_count)


def _unpack(column: pa.Array, kind: str) -> pa.Array:
    """Stored bytes back to their text (vectorised: a look-up returns a few hundred rows per partition, a history
    every row of it)."""
    width = 16 if kind == "uuid" else int(kind.removeprefix("hex"))
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(column)
    raw = np.frombuffer(column.buffers()[1], dtype=np.uint8, count=(column.offset + n) * width)
    raw = raw[column.offset * width:].reshape(n, width)
    digits = np.empty((n, 2 * width), dtype=np.uint8)
    digits[:, 0::2], digits[:, 1::2] = _HEX_DIGITS[raw >> 4], _HEX_DIGITS[raw & 15]
    if kind == "uuid":
        digits = digits[:, _UUID_PLACES]
        digits[:, _UUID_DASHES] = ord("-")
    size = digits.shape[1]
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * size).tobytes())
    validity = column.buffers()[0] if column.null_count else None
    if validity is not None and column.offset:
        validity = pa.array(column.is_valid().to_numpy(zero_copy_only=False)).buffers()[1]
    return pa.Array.from_buffers(pa.string(), n, [validity, offsets, pa.py_buffer(digits.tobytes())],
                                 null_count=column.null_count)
