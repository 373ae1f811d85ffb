"""Vectorised generator of realistic manifests for the benchmarks (no per-row Python).

Customers get one of three document templates (3, 4 or 5 rows: 4 files per customer on average), two
associated parties (most rows name the party by id, some by email), documents of all three categories,
two-sided ids with FRONT and BACK rows. About ``bad_share`` of the rows are broken in one of several ways
(bad uuid, alpha-2 country, expired, unknown type, bad s3 uri, impossible date), so validation rejects them.

Run alone: `uv run python bench/gen.py --rows 1000000 --format parquet` (prints the path).
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent / "out"
COLUMNS = (
    "customer_id", "associated_party_id", "associated_party_email", "document_type", "document_number", "country",
    "issue_date", "expiry_date", "side", "s3_uri", "document_date", "document_id",
)
# (document_type, side, per-document number index) rows of each template; None: no side.
TEMPLATES: list[list[tuple[str, str | None, int]]] = [
    [("PASSPORT", None, 0), ("UTILITY_BILL", None, 1), ("OTHER", None, 2)],
    [("NATIONAL_ID", "FRONT", 0), ("NATIONAL_ID", "BACK", 0), ("PASSPORT", None, 1), ("BANK_STATEMENT", None, 2)],
    [("DRIVERS_LICENSE", "FRONT", 0), ("DRIVERS_LICENSE", "BACK", 0), ("PASSPORT", None, 1),
     ("UTILITY_BILL", None, 2), ("VISA", None, 3)],
]
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DASHES = (8, 13, 18, 23)


def uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """n random version-4 uuid strings, built as one fixed-width byte buffer."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexd = np.empty((n, 32), dtype=np.uint8)
    hexd[:, 0::2] = _HEX[raw >> 4]
    hexd[:, 1::2] = _HEX[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    keep = [i for i in range(36) if i not in _DASHES]
    out[:, keep] = hexd
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out.tobytes())])


def _s(values: np.ndarray | list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def chunk(rng: np.random.Generator, customers: int, today: date, bad_share: float) -> pa.Table:
    """The rows of ``customers`` customers (customer-contiguous, as exports usually are)."""
    tpl = rng.integers(0, len(TEMPLATES), size=customers)
    cust = uuids(rng, customers)
    parties = [uuids(rng, customers), uuids(rng, customers)]
    pieces = []
    for t, template in enumerate(TEMPLATES):
        idx = np.flatnonzero(tpl == t)
        k, m = len(template), len(idx)
        if not m:
            continue
        ci = np.repeat(idx, k)
        slot = np.tile(np.arange(k), m)
        pieces.append((ci, slot, t))
    ci = np.concatenate([p[0] for p in pieces])
    slot = np.concatenate([p[1] for p in pieces])
    tplr = np.concatenate([np.full(len(p[0]), p[2]) for p in pieces])
    order = np.argsort(ci, kind="stable")
    ci, slot, tplr = ci[order], slot[order], tplr[order]
    n = len(ci)

    flat = [(t, s) for t, template in enumerate(TEMPLATES) for s in range(len(template))]
    offset = np.cumsum([0] + [len(t) for t in TEMPLATES])[:-1]
    kind = offset[tplr] + slot  # index into `flat`
    dtype = pa.array([TEMPLATES[t][s][0] for t, s in flat], pa.string()).take(pa.array(kind))
    side = pa.array([TEMPLATES[t][s][1] for t, s in flat], pa.string()).take(pa.array(kind))
    docno = np.array([TEMPLATES[t][s][2] for t, s in flat])[kind]
    ident = np.isin(np.array([TEMPLATES[t][s][0] for t, s in flat])[kind],
                    ["PASSPORT", "NATIONAL_ID", "DRIVERS_LICENSE"])
    addr = np.isin(np.array([TEMPLATES[t][s][0] for t, s in flat])[kind], ["UTILITY_BILL", "BANK_STATEMENT"])

    ci_arr = pa.array(ci)
    cid = cust.take(ci_arr)
    party_no = (docno % 2).astype(np.int64)
    pid = pc.if_else(pa.array(party_no == 0), parties[0].take(ci_arr), parties[1].take(ci_arr))
    doc_key = (ci * 8 + docno).astype(np.int64)
    by_email = (doc_key * 2_654_435_761 >> 7) % 10 == 0  # one party spelling per document
    email = _join(pa.array(np.where(party_no == 0, "p0.", "p1."), pa.string()),
                  pc.utf8_slice_codeunits(cid, 0, 13), "@example.com")
    pid = pc.if_else(pa.array(by_email), pa.nulls(n, pa.string()), pid)
    email = pc.if_else(pa.array(by_email), email, pa.nulls(n, pa.string()))
    number = _join("D", pc.cast(pa.array(ci * 8 + docno + 10_000_000), pa.string()))
    countries = _s(["USA", "GBR", "DEU", "FRA", "ESP", "CAN", "MEX", "IND"])
    # Per-document values (FRONT and BACK rows of a document agree), spread by a multiplicative hash.
    country = countries.take(pa.array(doc_key * 7919 % len(countries)))
    issues = _s([(date(2016, 1, 1) + timedelta(days=int(d))).isoformat() for d in range(0, 2500, 7)])
    expiries = _s([(today + timedelta(days=int(d))).isoformat() for d in range(200, 3000, 7)])
    recent = _s([(today - timedelta(days=int(d))).isoformat() for d in range(1, 80)])
    issue = issues.take(pa.array(doc_key * 104_729 % len(issues)))
    expiry = expiries.take(pa.array(doc_key * 15_485_863 % len(expiries)))
    docdate = recent.take(pa.array(rng.integers(0, len(recent), n)))
    null = pa.nulls(n, pa.string())
    ident_a, addr_a = pa.array(ident), pa.array(addr)
    ext = pa.array(np.where(rng.random(n) < 0.7, ".pdf", ".jpg"), pa.string())
    uri = _join("s3://kyc-archive/docs/", cid, "/", pc.cast(pa.array(slot), pa.string()), ext)

    cols = {
        "customer_id": cid, "associated_party_id": pid, "associated_party_email": email, "document_type": dtype,
        "document_number": pc.if_else(ident_a, number, null), "country": pc.if_else(ident_a, country, null),
        "issue_date": pc.if_else(ident_a, issue, null), "expiry_date": pc.if_else(ident_a, expiry, null),
        "side": side, "s3_uri": uri, "document_date": pc.if_else(addr_a, docdate, null), "document_id": null,
    }
    # Break about bad_share of the rows, each in one way.
    bad = rng.random(n) < bad_share
    # Non-identifying rows have no country or dates to break: they get one of the other three.
    how = np.where(ident, rng.integers(0, 6, n), np.array([0, 3, 4])[rng.integers(0, 3, n)])
    breaks = [
        ("customer_id", "not-a-uuid"), ("country", "US"), ("expiry_date", "2020-01-01"),
        ("document_type", "PASSPRT"), ("s3_uri", "https://kyc-archive/x.pdf"), ("issue_date", "2021-02-30"),
    ]
    for k, (name, value) in enumerate(breaks):
        mask = bad & (how == k)
        # A broken customer id keeps its own spelling (a truncated uuid): one shared bad value would make one
        # giant "customer" in one bucket, which real files do not have.
        bad_value = pc.utf8_slice_codeunits(cid, 0, 35) if name == "customer_id" else pa.scalar(value, pa.string())
        cols[name] = pc.if_else(pa.array(mask), bad_value, cols[name])
    return pa.table({c: cols[c] for c in COLUMNS})


def generate(rows: int, fmt: str, *, seed: int = 7, bad_share: float = 0.05, today: date | None = None,
             out: Path = OUT, chunk_customers: int = 125_000, quiet: bool = False) -> Path:
    """Write (or reuse) a manifest of about ``rows`` rows; returns its path."""
    today = today or date.today()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"manifest-v2-{rows}-s{seed}-{today.isoformat()}.{fmt}"
    if path.exists():
        return path
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    customers = rows // 4
    tmp = path.with_suffix(path.suffix + ".tmp")
    writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    written = 0
    try:
        for first in range(0, customers, chunk_customers):
            table = chunk(rng, min(chunk_customers, customers - first), today, bad_share)
            if writer is None:
                writer = (pq.ParquetWriter(tmp, table.schema) if fmt == "parquet"
                          else pacsv.CSVWriter(tmp, table.schema))
            # Parquet: row groups of 128k rows, like a Spark/pandas export of a large table.
            if isinstance(writer, pq.ParquetWriter):
                writer.write_table(table, row_group_size=131_072)
            else:
                writer.write_table(table)
            written += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(path)
    if not quiet:
        print(f"generated {path.name}: {written:,} rows, {path.stat().st_size / 1e6:,.0f} MB "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--format", choices=("csv", "parquet"), default="parquet")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    print(generate(args.rows, args.format, seed=args.seed))


if __name__ == "__main__":
    main()
