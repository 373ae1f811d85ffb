"""Parquet manifests as real writers make them: pandas categories over several row groups, the UUID logical
type, Spark's nested ``_metadata`` column, and a file DuckDB wrote. Each is read as the text it holds."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.errors import SetupError
from connectors.manifest import open_manifest
from connectors.workarea import read_slot_range
from flows.plan import plan_manifest
from transforms.rules import Rules

ROWS = 5_000
CUSTOMERS = [uuid.UUID(int=(0x3F8E3C526D1A4B7E9A213C5D7E9F1A00 + i)) for i in range(40)]
PARTIES = [uuid.UUID(int=(0x5B2D7C1E8F3A4D6BA1C92E4F6A8B0C00 + i)) for i in range(40)]
TYPES = ["utility_bill", "BANK_STATEMENT", "Government_Letter"]  # upper-cased by validation


def _source() -> dict[str, list[Any]]:
    return {
        "customer_id": [str(CUSTOMERS[i % 40]).upper() for i in range(ROWS)],  # lower-cased by validation
        "associated_party_id": [str(PARTIES[i % 40]) for i in range(ROWS)],
        "document_type": [TYPES[i % 3] for i in range(ROWS)],
        "s3_uri": [f"s3://kyc-docs/bill-{i}.pdf" for i in range(ROWS)],
    }


def _expected() -> list[dict[str, Any]]:
    return [{"row_number": i + 1, "customer_id": str(CUSTOMERS[i % 40]), "associated_party_id": str(PARTIES[i % 40]),
             "document_type": TYPES[i % 3].upper(), "s3_uri": f"s3://kyc-docs/bill-{i}.pdf"} for i in range(ROWS)]


def _planned(path: Path, tmp_path: Path, batch_rows: int = 333) -> list[dict[str, Any]]:
    """Every row of the manifest after the plan stage (batches that start inside row groups), none rejected."""
    manifest = open_manifest(str(path), store=None, cache_dir=tmp_path / "cache")
    plan = plan_manifest(manifest, rules=Rules(today=dt.date(2026, 1, 10)), run_dir=tmp_path / "run",
                         batch_rows=batch_rows, slots=8, shard_rows=500)
    assert (plan.rows_in, plan.rows_rejected) == (ROWS, 0)
    rows = [r for s in plan.shards for r in read_slot_range(s.rows).to_pylist()]
    keep = ("row_number", "customer_id", "associated_party_id", "document_type", "s3_uri")
    return sorted(({k: r[k] for k in keep} for r in rows), key=lambda r: r["row_number"])


@pytest.mark.parametrize("categories", [["document_type"], ["document_type", "customer_id", "s3_uri"]])
def test_category_columns_over_several_row_groups_read_as_their_text(tmp_path: Path, categories: list[str]) -> None:
    frame = pd.DataFrame(_source())
    for name in categories:
        frame[name] = frame[name].astype("category")
    path = tmp_path / "categories.parquet"
    frame.to_parquet(path, row_group_size=700)
    assert pq.ParquetFile(path).metadata.num_row_groups > 2
    assert _planned(path, tmp_path) == _expected()


def test_uuid_logical_type_columns_read_as_canonical_uuids(tmp_path: Path) -> None:
    source = _source()
    table = pa.table({**source,
                      "customer_id": pa.array([CUSTOMERS[i % 40].bytes for i in range(ROWS)], pa.uuid()),
                      "associated_party_id": pa.array([PARTIES[i % 40].bytes for i in range(ROWS)], pa.uuid())})
    path = tmp_path / "uuids.parquet"
    pq.write_table(table, path, row_group_size=700)
    assert pq.ParquetFile(path).schema.column(0).logical_type.type == "UUID"
    assert _planned(path, tmp_path) == _expected()


def test_a_nested_extra_column_is_ignored_like_any_extra_column(tmp_path: Path) -> None:
    metadata = pa.array([{"file_path": f"part-{i % 3}.parquet", "file_size": 1000 + i} for i in range(ROWS)])
    path = tmp_path / "spark.parquet"
    pq.write_table(pa.table({**_source(), "_metadata": metadata}), path, row_group_size=700)
    assert _planned(path, tmp_path) == _expected()


def test_a_nested_canonical_column_still_refuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    source = _source()
    pq.write_table(pa.table({**source, "s3_uri": [[u] for u in source["s3_uri"]]}), path)
    with pytest.raises(SetupError, match=r"Parquet column 's3_uri' has a nested type"):
        _planned(path, tmp_path)


def test_a_manifest_duckdb_wrote_reads_as_its_text(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "duckdb.parquet"
    frame = pd.DataFrame(_source())  # noqa: F841 (DuckDB reads it by its name)
    with duckdb.connect() as con:
        con.execute("CREATE TYPE kind AS ENUM ('utility_bill', 'BANK_STATEMENT', 'Government_Letter')")
        con.execute(f"""COPY (SELECT customer_id::UUID AS customer_id, associated_party_id::UUID AS associated_party_id,
                                     document_type::kind AS document_type, s3_uri,
                                     {{'source': 'nightly', 'batch': 7}} AS _metadata
                              FROM frame) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 2048)""")
    assert pq.ParquetFile(path).metadata.num_row_groups >= 2
    assert _planned(path, tmp_path) == _expected()


def test_a_nested_column_a_mapping_reads_refuses_the_file(tmp_path: Path) -> None:
    from transforms.mapping import LegacyMapping

    source = _source()
    path = tmp_path / "archive.parquet"
    pq.write_table(pa.table({"Kunde": source["customer_id"], "Partei": source["associated_party_id"],
                             "Art": source["document_type"], "Datei": [[u] for u in source["s3_uri"]]}), path)
    mapping = LegacyMapping(layouts=[{"name": "a", "columns": {"customer_id": "Kunde", "associated_party_id": "Partei",
                                                               "document_type": "Art", "s3_uri": "Datei"}}])
    manifest = open_manifest(str(path), store=None, cache_dir=tmp_path / "cache")
    with pytest.raises(SetupError, match=r"^manifest: Parquet column 'Datei' has a nested type; the mapping reads it"):
        plan_manifest(manifest, rules=Rules(today=dt.date(2026, 1, 10)), run_dir=tmp_path / "run", batch_rows=500,
                      slots=8, shard_rows=500, mapping=mapping)


def test_a_not_a_number_in_a_float_number_column_is_an_empty_number_not_the_text_nan(tmp_path: Path) -> None:
    """A writer that keeps NaN (pyarrow, Spark) rather than null for a missing number in a float column."""
    rows = 2
    table = pa.table({"customer_id": [str(CUSTOMERS[0])] * rows, "associated_party_id": [str(PARTIES[0])] * rows,
                      "document_type": ["PASSPORT"] * rows, "document_number": pa.array([123456789.0, float("nan")]),
                      "country": ["USA"] * rows, "issue_date": ["2021-03-10"] * rows,
                      "expiry_date": ["2031-03-10"] * rows,
                      "s3_uri": [f"s3://kyc-docs/p-{i}.pdf" for i in range(rows)]})
    path = tmp_path / "floats.parquet"
    pq.write_table(table, path)
    manifest = open_manifest(str(path), store=None, cache_dir=tmp_path / "cache")
    plan = plan_manifest(manifest, rules=Rules(today=dt.date(2026, 1, 10)), run_dir=tmp_path / "run",
                         batch_rows=100, slots=8, shard_rows=500)
    assert (plan.rows_in, plan.rows_rejected) == (2, 1)
    kept = [r for s in plan.shards for r in read_slot_range(s.rows).to_pylist()]
    assert sorted(r["document_number"] or "" for r in kept) == ["", "123456789"]
