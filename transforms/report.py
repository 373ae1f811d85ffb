"""The outcome report's shape, its summary, and spreadsheet-safe CSV cells."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from transforms.codes import Status
from transforms.columns import REPORTED_VALUE_COLUMNS

#: What a rejected row's cell shows in the report when its value broke a rule.
MASK = "***"

#: The report's columns, in order, with their types: the one list (a table of names, not repeated logic), from
#: which :data:`REPORT_COLUMNS` and every writer of the report take the names.
REPORT_SCHEMA = pa.schema(
    [
        ("row_number", pa.int64()),
        ("customer_id", pa.string()),
        ("associated_party_id", pa.string()),
        ("document_type", pa.string()),
        ("side", pa.string()),
        ("s3_uri", pa.string()),
        ("status", pa.string()),
        ("reason_code", pa.string()),
        ("message", pa.string()),
        ("uri", pa.string()),
        ("http_status", pa.int32()),
        ("attempts", pa.int32()),
    ]
)

#: With a legacy mapping, what joins a report row back to the archive, after the report's own columns: the archive
#: (``source_file``), its data row (``source_row``, 1 = the first after the header) and the ``document_id`` the
#: mapping generates for a source row split into several file rows.
SOURCE_COLUMNS = ("source_file", "source_row", "document_id")

#: The report's columns in order: the names of :data:`REPORT_SCHEMA`, written once there.
REPORT_COLUMNS: list[str] = REPORT_SCHEMA.names


def report_schema(carried: tuple[str, ...] | list[str] = ()) -> pa.Schema:
    """The report's schema, with a mapping's source columns and ``carry_columns`` (text, as the archive had them)
    after its own."""
    return pa.schema([*REPORT_SCHEMA, *(pa.field(name, pa.int64() if name == "source_row" else pa.string())
                                        for name in carried)])


# OWASP's CSV-injection list: a spreadsheet treats a cell starting with these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_RE = r"^[=+\-@\t\r]"


def summarise(status_counts: Mapping[str, int], reason_counts: Mapping[str, int], rows_in: int,
              distinct_rows: int | None = None) -> dict[str, Any]:
    """The counts part of summary.json, with a flag (and problems) when they do not add up.

    Every status appears (zeros included) so dashboards need no special cases. ``counts_add_up`` is False when
    the statuses do not sum to ``rows_in``, when an unknown status appears, when there are fewer reasons
    than rejected/failed/unknown rows (each of those carries one), or when ``distinct_rows`` (the report's
    distinct row numbers) falls short of its lines: a row counted twice can hide a row that is missing.
    """
    problems: list[str] = []
    unknown = sorted(set(status_counts) - {s.value for s in Status})
    if unknown:
        problems.append(f"unknown status values: {', '.join(unknown)}")
    by_status = {s.value: int(status_counts.get(s.value, 0)) for s in Status}
    rows_out = sum(int(v) for v in status_counts.values())
    if rows_out != rows_in:
        problems.append(f"statuses sum to {rows_out}, manifest has {rows_in} rows")
    if distinct_rows is not None and distinct_rows != rows_out:
        problems.append(f"{rows_out - distinct_rows} report line(s) repeat a row already counted")
    with_reason = sum(int(v) for v in reason_counts.values())
    needs_reason = by_status["rejected"] + by_status["failed"] + by_status["unknown"]
    if with_reason < needs_reason:
        problems.append(f"{needs_reason} rejected/failed/unknown rows but only {with_reason} reason codes")
    if with_reason > rows_in:
        problems.append(f"{with_reason} reason codes for {rows_in} rows")
    return {
        "rows_in": int(rows_in),
        "rows_out": rows_out,
        "by_status": by_status,
        "by_reason": dict(sorted((k, int(v)) for k, v in reason_counts.items() if v)),
        "counts_add_up": not problems,
        "problems": problems,
    }


def escape_csv_formula(s: str | None) -> str | None:
    """Prefix a cell that a spreadsheet would run as a formula with a single quote; other cells unchanged."""
    if s and s.startswith(FORMULA_PREFIXES):
        return "'" + s
    return s


def escape_csv_formula_column(col: Any) -> Any:
    """Vectorised :func:`escape_csv_formula` for a string pyarrow array/chunked array or a pandas Series."""
    if isinstance(col, pd.Series):
        s = col.astype(object).where(col.notna(), None)
        hit = s.str.match(_FORMULA_RE, na=False).astype(bool)
        return s.where(~hit, "'" + s.where(hit, ""))
    arr = pc.cast(col, pa.string())
    hit = pc.fill_null(pc.match_substring_regex(arr, _FORMULA_RE), False)
    return pc.if_else(hit, pc.binary_join_element_wise("'", arr, ""), arr)


#: Prefixed to the text a report digest is made of, so that no digest of a report cell can equal another digest
#: the ledger's secret makes (those of document details are over JSON arrays, which start with ``[``).
MASK_DOMAIN = "report:"
#: Hex digits kept of a report digest: 128 bits, so two keys of one archive never share one.
MASK_HEX = 32


def hashed_s3_uri(uri: str, secret: bytes) -> str:
    """``s3://bucket/<key>`` as ``s3://bucket/hmac:<digest>``, the digest being the first :data:`MASK_HEX` hex
    digits of HMAC-SHA256 keyed by the ledger's ``secret`` over ``"report:" + key``.

    The same key under the same ledger always gives the same text (rows of one file, the reports of every run of
    the tenant), while a key that spells out a person's name never reaches the report; the digest is keyed, so a
    list of likely names hashed by anyone without the secret finds nothing. Anything that is not an ``s3://`` uri
    (a local manifest's path) is hashed whole.
    """
    if not secret:
        raise ValueError("hashed report cells need the ledger's secret")
    bucket, sep, key = uri.removeprefix("s3://").partition("/") if uri.startswith("s3://") else ("", "", uri)
    digest = hmac.new(secret, (MASK_DOMAIN + key).encode(), hashlib.sha256).hexdigest()[:MASK_HEX]
    return f"s3://{bucket}/hmac:{digest}" if sep else f"hmac:{digest}"


def hash_s3_uri_column(col: Any, secret: bytes) -> pa.Array:
    """:func:`hashed_s3_uri` over a string column, once per distinct value; empty cells and :data:`MASK` stay."""
    encoded = pc.dictionary_encode(pc.cast(col, pa.string()))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    hashed = pa.array([v if v is None or v in ("", MASK) else hashed_s3_uri(v, secret)
                       for v in encoded.dictionary.to_pylist()], pa.string())
    return pc.take(hashed, encoded.indices)


def exit_code_of(summary: Mapping[str, Any]) -> int:
    """The exit code of ``kyc-attach run`` for a written report: 1 when rows failed or are unknown, else 0."""
    by_status = summary.get("by_status", {})
    return 1 if by_status.get("failed", 0) or by_status.get("unknown", 0) else 0


def mask_broken_cells(rows: pa.Table, bad_fields: np.ndarray) -> pa.Table:
    """``rows`` with each cell of ``REPORTED_VALUE_COLUMNS`` that broke a rule replaced by :data:`MASK`.

    ``bad_fields`` is validation's bitmask per row (bit i: ``REPORTED_VALUE_COLUMNS[i]``). A value that failed
    its rule may be anything a person typed there (an email as a party id, a document number as a type), so the
    report shows that it was there, never what it was; the message names the field. Empty cells stay empty.
    """
    for bit, name in enumerate(REPORTED_VALUE_COLUMNS):
        hit = (bad_fields >> bit) & 1
        if not hit.any():
            continue
        col = rows.column(name)
        masked = pc.if_else(pc.and_(pa.array(hit.astype(bool)), pc.is_valid(col)), pa.scalar(MASK), col)
        rows = rows.set_column(rows.column_names.index(name), name, masked)
    return rows
