"""Reading a manifest (CSV or Parquet, local or on S3) as a stream of record batches.

Memory is bounded by the batch size, never by the manifest: CSV goes through pyarrow's streaming
reader and Parquet through ``ParquetFile.iter_batches`` with pre-buffering off. Every column is read as
text; the pure validation decides what the text means.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.errors import SetupError
from connectors.s3 import Location, S3Store

_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Manifest:
    """A manifest file on local disk (S3 manifests are copied down first) and what identifies it."""

    location: str
    path: Path
    content_id: str  # the S3 ETag, or a SHA-256 of a local file: a changed file is a new job
    format: str  # "csv" or "parquet"

    @property
    def job_id(self) -> str:
        """Stable identity of the job: same location and same content resume the same job."""
        return hashlib.sha256(f"{self.location}\0{self.content_id}".encode()).hexdigest()[:20]


def open_manifest(location: str, *, s3: S3Store | None, cache_dir: Path) -> Manifest:
    """Find the manifest, copy it down if on S3, and say how to read it; ``SetupError`` if unreadable."""
    loc = Location.parse(location)
    if loc.is_s3:
        assert loc.bucket is not None
        if s3 is None:
            raise SetupError("manifest: an s3:// manifest needs S3 access")
        try:
            info = s3.head(loc.bucket, loc.key)
        except Exception:
            raise SetupError("manifest: the S3 object cannot be read (missing or access denied)") from None
        path = cache_dir / "manifests" / f"{info.etag or 'noetag'}-{Path(loc.key).name}"
        if not path.exists():
            s3.download(loc.bucket, loc.key, path)
        content_id = info.etag
    else:
        path = Path(location)
        if not path.is_file():
            raise SetupError("manifest: no file at the given path")
        content_id = _sha256_of(path)
    return Manifest(location, path, content_id, _detect_format(path))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _detect_format(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise SetupError("manifest: the file is empty")
    if head == _PARQUET_MAGIC:
        return "parquet"
    return "csv"


def read_columns(manifest: Manifest) -> list[str]:
    """The manifest's column names, from the CSV header or the Parquet schema."""
    if manifest.format == "parquet":
        try:
            return list(pq.ParquetFile(manifest.path).schema_arrow.names)
        except (pa.ArrowException, OSError):
            raise SetupError("manifest: not a readable Parquet file") from None
    try:
        with manifest.path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise SetupError("manifest: the header is not valid UTF-8") from None
    if not header or not any(h.strip() for h in header):
        raise SetupError("manifest: the file has no header row")
    return [h.strip() for h in header]


def iter_batches(manifest: Manifest, *, batch_rows: int) -> Iterator[pa.Table]:
    """The manifest's rows, ``batch_rows`` at a time, every column as text; ``SetupError`` if malformed."""
    columns = read_columns(manifest)
    if manifest.format == "parquet":
        yield from _parquet_batches(manifest.path, batch_rows)
    else:
        yield from _csv_batches(manifest.path, columns, batch_rows)


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[pa.Table]:
    pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    for batch in pf.iter_batches(batch_size=batch_rows):
        table = pa.Table.from_batches([batch])
        try:
            yield table.cast(pa.schema([pa.field(n, pa.string()) for n in table.column_names]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise SetupError("manifest: a Parquet column has a type that cannot be read as text") from None


def _csv_batches(path: Path, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    # Roughly batch_rows rows per block; pyarrow splits on block boundaries, not row counts.
    block = max(1 << 16, min(batch_rows * 256, 64 << 20))
    read = pacsv.ReadOptions(block_size=block, column_names=columns, skip_rows=1, encoding="utf8")
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns}, strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except pa.ArrowInvalid as exc:
        raise SetupError(f"manifest: {_csv_problem(str(exc))}") from None


def _csv_problem(arrow_message: str) -> str:
    """A one-line reason from pyarrow's parse error, without echoing any cell."""
    text = arrow_message.lower()
    if "utf8" in text or "utf-8" in text:
        return "the file is not valid UTF-8 text"
    if "expected" in text and "columns" in text:
        # pyarrow says "Expected N columns, got M: <the row>"; keep the counts, drop the row.
        return "a row has a different number of fields than the header (" + arrow_message.split(":")[0] + ")"
    return "the CSV cannot be parsed"
