"""Manifests as careless tools write them (issue 16): CR-only line ends, compressed CSV under any name, headers in
another case or padded with spaces. Read by content, or refused with one line and exit 2 before any API call.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors.errors import SetupError
from connectors.manifest import open_manifest
from connectors.workarea import read_slot_range
from flows.commands.cli import app
from flows.plan import plan_manifest
from tests.support.scenario import sandbox_record
from transforms.rules import Rules

C1 = "0f8e3c52-6d1a-4b7e-9a21-3c5d7e9f1a01"
P1 = "5b2d7c1e-8f3a-4d6b-a1c9-2e4f6a8b0c11"
HEADER = "customer_id,associated_party_id,document_type,s3_uri"
ROWS = [f"{C1},{P1},UTILITY_BILL,s3://kyc-docs/bill-{i}.pdf" for i in range(3)]


def _csv(line_end: str = "\n", header: str = HEADER) -> bytes:
    return (line_end.join([header, *ROWS]) + line_end).encode()


def _zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return bytes(sink.getvalue())


def _valid_rows(path: Path, tmp_path: Path) -> list[dict[str, Any]]:
    manifest = open_manifest(str(path), store=None, cache_dir=tmp_path / "cache")
    plan = plan_manifest(manifest, rules=Rules(today=dt.date(2026, 1, 10)), run_dir=tmp_path / "run",
                         batch_rows=1000, slots=8, shard_rows=100)
    assert plan.rows_rejected == 0
    rows = [r for s in plan.shards for r in read_slot_range(s.rows).to_pylist()]
    return sorted(rows, key=lambda r: r["row_number"])


CONTENTS = {
    "excel_mac.csv": lambda: _csv("\r"),
    "windows.csv": lambda: _csv("\r\n"),
    "gzip.csv.gz": lambda: gzip.compress(_csv()),
    "gzip_cr_only.csv.gz": lambda: gzip.compress(_csv("\r")),
    "zstd.csv.zst": lambda: _zstd(_csv()),
    "plain_named_gz.csv.gz": lambda: _csv(),  # the name says compressed, the content is plain
    "gzip_named_plain.csv": lambda: gzip.compress(_csv()),  # and the reverse
    "mixed_case_header.csv": lambda: _csv(header="Customer_ID, Associated_Party_ID ,DOCUMENT_TYPE,  s3_uri"),
}


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_manifest_is_read_by_its_content(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(CONTENTS[name]())
    rows = _valid_rows(path, tmp_path)
    assert [(r["row_number"], r["customer_id"], r["s3_uri"]) for r in rows] == [
        (i + 1, C1, f"s3://kyc-docs/bill-{i}.pdf") for i in range(3)]


def test_parquet_column_names_match_ignoring_case_and_spaces(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({" Customer_ID": [C1], "ASSOCIATED_PARTY_ID ": [P1], "Document_Type": ["UTILITY_BILL"],
                             "s3_URI": ["s3://kyc-docs/bill-0.pdf"]}), path)
    rows = _valid_rows(path, tmp_path)
    assert [(r["customer_id"], r["associated_party_id"], r["s3_uri"]) for r in rows] == [
        (C1, P1, "s3://kyc-docs/bill-0.pdf")]


def test_two_columns_that_read_as_one_name_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"customer_id": [C1], "Customer_ID ": [C1], "associated_party_id": [P1],
                             "document_type": ["UTILITY_BILL"], "s3_uri": ["s3://kyc-docs/a.pdf"]}), path)
    manifest = open_manifest(str(path), store=None, cache_dir=tmp_path / "cache")
    with pytest.raises(SetupError, match="duplicate column 'customer_id'"):
        plan_manifest(manifest, rules=Rules(today=dt.date(2026, 1, 10)), run_dir=tmp_path / "run",
                      batch_rows=1000, slots=8, shard_rows=100)


# file -> (content, what the one line on stderr must say)
REFUSED = {
    "truncated.csv.gz": (lambda: gzip.compress(_csv() * 2000)[:400], "cannot be decompressed"),
    "corrupt_tail.csv.gz": (lambda: gzip.compress(_csv() * 20000)[:-64], "truncated or corrupt"),
    "same_name.csv": (lambda: _csv(header="customer_id,associated_party_id,document_type,s3_uri,Customer_ID")
                      .replace(b".pdf\n", b".pdf,x\n"), "duplicate column 'customer_id'"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unreadable_manifest_exits_2_with_one_line_and_no_api_call(name: str, corpus_api_url: str,
                                                                   tmp_path: Path) -> None:
    content, says = REFUSED[name]
    path = tmp_path / name
    path.write_bytes(content())
    result = CliRunner().invoke(app, ["run", str(path), "--report-uri", str(tmp_path / "reports")],
                                catch_exceptions=False)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kyc-attach: cannot start: manifest: "), result.stderr
    assert says in lines[0]
    record = sandbox_record(corpus_api_url)
    assert sum(record["requests"].values()) == 0 and record["uploads"] == [] and record["attachments"] == []


class _StoreWithEtag:
    """An S3 store whose HEAD answers the given ETag (a misbehaving S3-compatible gateway) and whose download copies
    a CSV manifest."""

    def __init__(self, etag: str) -> None:
        self.etag = etag
        self.written: list[Path] = []

    def head(self, loc: Any) -> Any:
        from connectors.s3 import ObjectInfo

        return ObjectInfo(len(_csv()), self.etag, "text/csv")

    def download(self, loc: Any, dest: Path) -> None:
        self.written.append(dest)
        dest.write_bytes(_csv())


@pytest.mark.parametrize("etag", ["../../escaped", "/abs/olute", "a/b", "nul\x00byte", "x" * 300])
def test_an_s3_manifest_is_copied_into_the_run_folder_whatever_etag_the_store_answers(etag: str,
                                                                                     tmp_path: Path) -> None:
    run_dir = tmp_path / "work" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    store = _StoreWithEtag(etag)
    found = open_manifest("s3://kyc-docs/in/manifest.csv", store=store, cache_dir=run_dir)  # type: ignore[arg-type]
    assert [p.resolve().parent for p in store.written] == [(run_dir / "manifests").resolve()]
    assert found.path.resolve().parent == (run_dir / "manifests").resolve()
    assert found.content_id == etag  # still the object's identity
