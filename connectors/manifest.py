"""Reading a manifest (CSV or Parquet, local or on S3) as a stream of record batches.

Memory is bounded by the batch size, never by the manifest: CSV goes through pyarrow's streaming
reader and Parquet through ``ParquetFile.iter_batches`` with pre-buffering off. Every column is read as
text; the pure validation decides what the text means.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.errors import ObjectMissing, SetupError
from connectors.guarded_delete import remove_file
from connectors.job_ids import job_id_of, sha256_of_file
from connectors.objects import ObjectStore
from connectors.run_claim import error_reason
from connectors.s3 import Location
from connectors.work_folder import own_folder
from transforms.arrow_text import zero_based
from transforms.columns import CANONICAL_COLUMNS, normalise_column_names, same_name_columns

_PARQUET_MAGIC = b"PAR1"
# A CSV may come compressed (.csv.gz, .csv.zst): the content's magic bytes decide, never the name, so a plain
# file named .gz (or the reverse) is read as what it is. Arrow decompresses as a stream, so memory stays bounded.
_COMPRESSION_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
_MAX_HEADER_BYTES = 1 << 20
_CSV_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class Manifest:
    """A manifest file on local disk (S3 manifests are copied down first) and what identifies it."""

    location: str
    path: Path
    content_id: str  # the S3 ETag, or a SHA-256 of a local file: a changed file is a new job
    format: str  # "csv" or "parquet"
    compression: str | None = None  # a CSV's codec ("gzip", "zstd"), found from its first bytes
    encoding: str = "utf-8"  # CSV only: the text encoding (legacy archives: from the mapping, or detected)
    delimiter: str = ","  # CSV only: the field delimiter (legacy archives: from the mapping, or sniffed)

    @property
    def is_local_copy(self) -> bool:
        """Whether ``path`` is this tool's copy of an S3 manifest (the user's own file otherwise)."""
        return self.location.startswith("s3://")

    @property
    def job_id(self) -> str:
        """Stable identity of the job (``connectors.job_ids``): same location and same content resume the same job."""
        return job_id_of(self.location, self.content_id)


def open_manifest(location: str, *, store: ObjectStore | None, cache_dir: Path) -> Manifest:
    """Find the manifest, copy it down if on S3, and say how to read it; ``SetupError`` if unreadable.

    ``store`` may be ``None`` for a local manifest (no S3 access needed)."""
    loc = Location.parse(location)
    if loc.is_s3:
        if store is None:
            raise SetupError("manifest: an s3:// manifest needs S3 access")
        try:
            info = store.head(loc)
        except ObjectMissing as exc:
            raise SetupError(f"manifest: the S3 object cannot be read ({exc})") from None
        except Exception as exc:  # out of reach, no credentials, ...: say which, not "missing"
            raise SetupError(f"manifest: the S3 object cannot be read ({error_reason(exc)})") from None
        # Copied afresh into a checked folder: a link planted there, or a file left under the copy's name, is
        # neither written through nor read as the manifest.
        # The ETag is the store's text, not a file name: a gateway answering one with a '/' would place the copy
        # outside the checked folder. Its digest names the copy instead.
        tag = hashlib.sha256(info.etag.encode()).hexdigest()[:16] if info.etag else "noetag"
        # The key's digest, not its name: an S3 key's name may be longer than a local file's (and may name a person).
        named = hashlib.sha256(loc.key.encode()).hexdigest()[:16]
        path = own_folder(cache_dir, "manifests") / f"{tag}-{named}"
        path.unlink(missing_ok=True)
        try:
            store.download(loc, path)
        except Exception:
            path.unlink(missing_ok=True)  # a partial copy holds rows too
            raise SetupError("manifest: the S3 object could not be copied down (changed, removed or access "
                             "denied while reading); run again") from None
        content_id = info.etag
    else:
        path = Path(location)
        if not path.is_file():
            raise SetupError("manifest: no file at the given path")
        content_id = sha256_of_file(path)
    return Manifest(location, path, content_id, *_detect_format(path))


_DIALECT_BYTES = 1 << 16
_DELIMITERS = (",", ";", "\t", "|")


def with_dialect(manifest: Manifest, *, encoding: str | None, delimiter: str | None) -> Manifest:
    """The CSV manifest with its encoding and delimiter settled: as given, else detected from its first 64 KB.

    For legacy archives (a mapping): a file that is not UTF-8 gets the encoding charset-normalizer finds, and the
    delimiter is the one of ``, ; tab |`` that splits the header into the most fields.
    """
    if manifest.format != "csv":
        return manifest
    with _open_csv_stream(manifest) as stream:
        head = stream.read(_DIALECT_BYTES)
    enc = encoding or _detect_encoding(head)
    if delimiter is None:
        first = re.split(rb"[\r\n]", head, maxsplit=1)[0].decode(enc, errors="replace")
        delimiter = max(_DELIMITERS, key=lambda d: (len(_fields(first, d)), d == ","))
    return replace(manifest, encoding=enc, delimiter=delimiter)


def _detect_encoding(head: bytes) -> str:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    if best is None:
        raise SetupError("manifest: the text encoding cannot be told; give `encoding:` in the mapping file")
    return str(best.encoding)


def _fields(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def discard_local_copy(manifest: Manifest, cache_dir: Path) -> None:
    """Delete the local copy of an S3 manifest (its rows are personal data); a local manifest is the user's.

    ``cache_dir`` is the folder ``open_manifest`` copied into: nothing outside it is ever deleted.
    """
    if manifest.is_local_copy:
        remove_file(manifest.path, root=cache_dir)


def _detect_format(path: Path) -> tuple[str, str | None]:
    """("parquet" or "csv", the CSV's compression codec or None), from the file's first bytes."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise SetupError("manifest: the file is empty")
    if head == _PARQUET_MAGIC:
        return "parquet", None
    for magic, codec in _COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return "csv", codec
    return "csv", None


def _open_csv_stream(manifest: Manifest) -> pa.NativeFile:
    """The CSV's bytes, decompressed on the fly when the file is compressed."""
    raw = pa.OSFile(str(manifest.path), "rb")
    return pa.CompressedInputStream(raw, manifest.compression) if manifest.compression else raw


def _first_line(manifest: Manifest) -> bytes:
    """The header line's bytes, whatever ends lines: LF, CRLF, or CR alone (Excel for Mac)."""
    try:
        with _open_csv_stream(manifest) as stream:
            head: bytes = stream.read(_MAX_HEADER_BYTES)
    except (pa.ArrowException, OSError):
        raise SetupError(f"manifest: the file starts as {manifest.compression} but cannot be decompressed "
                         "(truncated or corrupt)") from None
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    return head[:min(ends)] if ends else head


def read_columns(manifest: Manifest) -> list[str]:
    """The manifest's column names, normalised (BOM and spaces trimmed, lower-case) for CSV and Parquet alike.

    ``SetupError`` when two columns differ only in case or spaces: which one holds the data is a guess.
    """
    if manifest.format == "parquet":
        try:
            names = list(pq.ParquetFile(manifest.path).schema_arrow.names)
        except (pa.ArrowException, OSError):
            raise SetupError("manifest: not a readable Parquet file") from None
    else:
        names = _csv_header(manifest)
    problems = same_name_columns(names)
    if problems:
        raise SetupError("manifest: " + "; ".join(problems))
    return normalise_column_names(names)


def _csv_header(manifest: Manifest) -> list[str]:
    # Only the first line is decoded here: a bad byte further down is reported by the reader with its column,
    # not blamed on the header.
    first = _first_line(manifest)
    utf8 = codecs.lookup(manifest.encoding).name == "utf-8"
    try:
        text = first.decode("utf-8-sig" if utf8 else manifest.encoding)
    except UnicodeDecodeError:
        raise SetupError("manifest: the header is not valid UTF-8 (is the file CSV, saved as UTF-8? a legacy "
                         "archive can name its encoding in a mapping file)") from None
    header = _fields(text.rstrip("\r\n"), manifest.delimiter)
    if not header or not any(h.strip() for h in header):
        raise SetupError("manifest: the file has no header row")
    if len(header) == 1:
        joined = [d for d in _DELIMITERS if d != manifest.delimiter and len(_fields(header[0], d)) >= 3]
        if joined:
            shown = "tab" if joined[0] == "\t" else repr(joined[0])
            raise SetupError(f"manifest: the header reads as one field holding {shown}-separated names: the file "
                             f"looks {shown}-delimited; a mapping file can say `delimiter:` (see docs/operations.md)")
    return header


def iter_batches(manifest: Manifest, *, batch_rows: int) -> Iterator[pa.Table]:
    """The manifest's rows, ``batch_rows`` at a time, every column as text; ``SetupError`` if malformed.

    A manifest without a single data row (header only) is a ``SetupError`` too: it is almost always a failed
    export, and a run that "succeeds" on nothing would hide that.
    """
    columns = read_columns(manifest)
    batches = _parquet_batches(manifest.path, columns, batch_rows) if manifest.format == "parquet" else (
        _csv_batches(manifest, columns, batch_rows))
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        yield batch
    if rows == 0:
        raise SetupError("manifest: no data rows (only a header)")


def count_rows(manifest: Manifest, *, batch_rows: int) -> int:
    """Read the whole manifest once and count its rows; ``SetupError`` on any whole-file problem.

    The CLI runs this before it starts Prefect, so a broken file ends in one line on stderr and exit 2.
    """
    return sum(b.num_rows for b in iter_batches(manifest, batch_rows=batch_rows))


def _parquet_batches(path: Path, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    try:
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        schema = pf.schema_arrow
        # A nested column that is not a canonical one (Spark's ``_metadata`` struct) is an extra column: it is
        # not read at all and stands in the batch as empty text, so the header and the batch still agree.
        skipped = {i for i, (name, f) in enumerate(zip(columns, schema, strict=True))
                   if _is_nested(f.type) and name not in CANONICAL_COLUMNS}
        read = [i for i in range(len(columns)) if i not in skipped]
        # Columns decode on Arrow's threads: the reading thread is the plan's critical path (validation runs on
        # two others), and single-threaded decoding made the stage ~8% slower for no less CPU.
        for batch in pf.iter_batches(batch_size=batch_rows, columns=[schema.names[i] for i in read]):
            texts = iter([_parquet_text(c, schema.field(i)) for c, i in zip(batch.columns, read, strict=True)])
            # ``columns``: the schema's names normalised, as a CSV header is (``Customer_ID`` is customer_id).
            yield pa.Table.from_arrays(
                [pa.nulls(batch.num_rows, pa.string()) if i in skipped else next(texts) for i in range(len(columns))],
                names=columns)
    except (pa.ArrowInvalid, OSError):
        raise SetupError("manifest: the Parquet file cannot be read (truncated or corrupt)") from None


def nested_parquet_columns(manifest: Manifest) -> list[str]:
    """The (normalised) names of a Parquet manifest's nested columns, which are read only when canonical; empty
    for CSV. A mapping that takes one as a source column is refused with it."""
    if manifest.format != "parquet":
        return []
    schema = pq.ParquetFile(manifest.path).schema_arrow
    return [n for n, f in zip(normalise_column_names(schema.names), schema, strict=True) if _is_nested(f.type)]


def _is_nested(t: pa.DataType) -> bool:
    return bool(pa.types.is_nested(t) or (pa.types.is_dictionary(t) and pa.types.is_nested(t.value_type)))


def _uuid_text(col: pa.Array) -> pa.Array:
    """16-byte uuids (Parquet's UUID logical type) as their canonical text, 8-4-4-4-12 lower-case hex."""
    storage = col.storage if isinstance(col, pa.ExtensionArray) else col
    n = len(storage)
    if not n:
        return pa.array([], pa.string())
    raw = np.frombuffer(storage.buffers()[1], dtype=np.uint8)[storage.offset * 16:(storage.offset + n) * 16]
    hexed = _HEX_DIGITS[raw.reshape(n, 16)].reshape(n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, end, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        text[:, at:at + end - start] = hexed[:, start:end]
    offsets = np.arange(0, 36 * n + 1, 36, dtype=np.int32)
    out = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())])
    return pc.if_else(storage.is_valid(), out, pa.scalar(None, pa.string())) if storage.null_count else out


# Each byte as its two lower-case hex digits (ASCII codes), for _uuid_text.
_HEX_DIGITS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint8).reshape(256, 2)


def _is_uuid_type(t: pa.DataType) -> bool:
    if isinstance(t, pa.BaseExtensionType):
        return bool(t.extension_name == "arrow.uuid")
    return bool(pa.types.is_fixed_size_binary(t) and t.byte_width == 16)


def _parquet_text(col: pa.Array, f: pa.Field) -> pa.Array:
    """A Parquet column as text, the way the row rules expect it.

    Scalar types are rendered as text (an integer customer_id then fails ``bad_uuid`` row by row); dates become
    ``YYYY-MM-DD``, and so do timestamps at midnight (pandas writes dates as timestamps), while a timestamp with
    a time of day keeps it and fails ``bad_date``. A uuid (Parquet's UUID logical type, 16 bytes) becomes its
    canonical text. Nested types (lists, structs) in a canonical column are a whole-file problem.
    """
    t = f.type
    if _is_uuid_type(t):
        return _uuid_text(col)
    if pa.types.is_timestamp(t):
        midnight = pc.fill_null(pc.equal(pc.cast(pc.floor_temporal(col, unit="day"), t), col), False)
        return pc.if_else(midnight, pc.strftime(col, format="%Y-%m-%d"), pc.strftime(col, format="%Y-%m-%dT%H:%M:%S"))
    if pa.types.is_date(t):
        return pc.strftime(col, format="%Y-%m-%d")
    if pa.types.is_floating(t):  # a NaN some writers keep for a missing value is empty, never the text "nan"
        col = pc.if_else(pc.is_nan(col), pa.scalar(None, t), col)
    if _is_nested(t):
        raise SetupError(f"manifest: Parquet column '{f.name}' has a nested type ({t}); a manifest holds text")
    try:
        return zero_based(col.cast(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise SetupError(
            f"manifest: Parquet column '{f.name}' ({t}) cannot be read as text (binary that is not UTF-8?)"
        ) from None


def _csv_batches(manifest: Manifest, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    # Small fixed blocks, joined into batches of about batch_rows rows. pyarrow's streaming reader reads up to
    # 32 blocks ahead of its consumer whatever the consumer's pace, so memory is ~32 blocks: with the former
    # batch-sized blocks (16 MB) that was ~500 MB of read-ahead, and most of the RSS of a large CSV run. A row
    # must fit in one block, so the block is well above any sane row (a 1 MB cell is rejected row by row, not
    # file-wide).
    block = _CSV_BLOCK_BYTES
    # A legacy encoding is transcoded to UTF-8 by pyarrow as it reads (slower than UTF-8, still streamed).
    read = pacsv.ReadOptions(block_size=block, column_names=columns, skip_rows=1, encoding=manifest.encoding)
    parse = pacsv.ParseOptions(newlines_in_values=True, delimiter=manifest.delimiter)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns}, strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    try:
        reader = pacsv.open_csv(_open_csv_stream(manifest), read_options=read, parse_options=parse,
                                convert_options=convert)
        waiting: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            waiting.append(batch)
            rows += batch.num_rows
            if rows >= batch_rows:
                yield pa.Table.from_batches(waiting)
                waiting, rows = [], 0
        if waiting:
            yield pa.Table.from_batches(waiting)
    except pa.ArrowInvalid as exc:
        raise SetupError(f"manifest: {_csv_problem(str(exc), columns, block)}") from None
    except (pa.ArrowException, OSError):
        # A compressed file cut short or corrupt part-way: the codec's message says nothing a person can use.
        raise SetupError("manifest: the file cannot be read to its end (truncated or corrupt"
                         f"{' ' + manifest.compression + ' data' if manifest.compression else ''})") from None


def _csv_problem(arrow_message: str, columns: list[str], block: int) -> str:
    """A one-line reason from pyarrow's parse error, without echoing any cell (pyarrow quotes the row)."""
    text = arrow_message.lower()
    if "utf8" in text or "utf-8" in text:
        col = re.search(r"column #(\d+)", arrow_message)
        where = f" in column '{columns[int(col.group(1))]}'" if col and int(col.group(1)) < len(columns) else ""
        return f"the file is not valid UTF-8 text (bad bytes{where}); save it as UTF-8"
    counts = re.search(r"expected (\d+) columns, got (\d+)", text)
    if counts:
        return (f"a row has {counts.group(2)} fields but the header has {counts.group(1)} "
                "(ragged row or unbalanced quote)")
    if "straddl" in text:
        return f"a row is longer than {block >> 20} MB (an unclosed quote?)"
    return "the CSV cannot be parsed"
