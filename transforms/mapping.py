"""Legacy archive layouts to canonical manifest columns: renames, value maps, date formats, country codes.

Pure: a mapping (loaded from YAML by ``connectors.mapping_file``) and a table in, a table with canonical
column names out. Every conversion runs once per distinct value of a column, not per row (a million-row
archive has a handful of document types and a few thousand dates), through a dictionary encoding.

A value that cannot be converted is passed on unchanged, so validation rejects its row with the proper
reason (``bad_date``, ``bad_country``, ``unknown_type``, ``bad_side``) instead of the mapping guessing; the
mapping keeps a count of such values (``MappingReport``) so ``kyc-attach validate`` can say which to add.

Order of conversions for one column: ``prefix`` → ``values`` (exact, ignoring case and surrounding spaces) →
date format (date columns) → country names and codes to alpha-3 (``country``, in any language pycountry has a
translation for). So a ``values`` entry wins over the built-in country lookup, and can feed it (``BRD: DE``).
A layout with ``files`` turns one source row into one row per non-empty file column (one document: they share
a generated ``document_id`` unless the layout maps one). ``carry_columns`` ride along unconverted, under
``carry_key`` names, for the plan to set aside (``split_carried``) and the report to join back by row number.
"""

from __future__ import annotations

import gettext
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pycountry
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from transforms.catalogue import CATEGORY_OF_TYPE, IDENTIFYING_TYPES
from transforms.columns import CANONICAL_COLUMNS, PARTY_COLUMNS, REQUIRED_COLUMNS, CanonicalColumn
from transforms.report import REPORT_SCHEMA, SOURCE_COLUMNS

DATE_COLUMNS: tuple[str, ...] = ("issue_date", "expiry_date", "document_date")
#: Canonical columns holding personal data: never in a report, so a source column feeding one is never carried.
PERSONAL_COLUMNS: tuple[CanonicalColumn, ...] = ("document_number", "associated_party_email")
#: Marks carried source columns in a mapped batch; no canonical column starts with it.
CARRY_PREFIX = "carry:"
#: The source row of each row of a mapped batch (``apply_mapping(..., with_source_row=True)``), set aside with the
#: carried columns: the report's ``source_row``.
SOURCE_ROW_KEY = "source:row"
_REPORT_NAMES = frozenset(n.lower() for n in (*REPORT_SCHEMA.names, *SOURCE_COLUMNS))


class MappingError(ValueError):
    """The mapping does not fit the file (no layout matches its header) or is itself inconsistent."""


class ColumnSource(BaseModel):
    """Where a canonical column comes from: a source column, optionally with a prefix (relative keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(description="Name of the source column (matched case-insensitively).")
    prefix: str = Field("", description="Prepended to relative values, e.g. 's3://archive-bucket/' for keys.")


class FileSource(BaseModel):
    """One file column of a source row that holds several files of one document (front and back images)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(description="Source column holding the file's S3 uri or key (matched case-insensitively).")
    side: Literal["FRONT", "BACK"] | None = Field(None, description="The side this column's file is, if any.")
    prefix: str = Field("", description="Prepended to relative values, e.g. 's3://archive-bucket/'.")


class Layout(BaseModel):
    """One source layout: which source column feeds each canonical column and how its values convert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="A name for people and error messages, e.g. 'bank-a-core-v3'.")
    columns: dict[CanonicalColumn, str | ColumnSource] = Field(
        description="Canonical column <- source column (or {column, prefix}). Unlisted source columns are dropped."
    )
    values: dict[CanonicalColumn, dict[str, str]] = Field(
        default_factory=dict,
        description="Per canonical column, source value -> canonical value (keys match ignoring case and "
        "surrounding spaces); values not listed pass through unchanged.",
    )
    date_format: str | None = Field(
        None, description="strptime format of every date column (e.g. '%d/%m/%Y'); converted to YYYY-MM-DD."
    )
    date_formats: dict[Literal["issue_date", "expiry_date", "document_date"], str] = Field(
        default_factory=dict, description="Per date column formats, overriding date_format."
    )
    country_to_alpha3: bool = Field(
        True,
        description="Convert alpha-2 codes and country names (in any language pycountry translates) to "
        "ISO 3166-1 alpha-3.",
    )
    files: list[FileSource] = Field(
        default_factory=list,
        description="Several file columns per source row (e.g. front and back image): each non-empty one becomes a "
        "row of the same document. Replaces columns.s3_uri and columns.side.",
    )

    carry_columns: list[str] = Field(
        default_factory=list,
        description="Source columns copied as they are into the report's rows (rows.csv/rows.parquet), e.g. the "
        "archive's own row id, to join the report back to it. Non-personal ids only: a column that feeds "
        "document_number or associated_party_email is refused.",
    )

    @field_validator("date_format")
    @classmethod
    def _reads_whole_dates(cls, fmt: str | None) -> str | None:
        problem = date_format_problem(fmt) if fmt is not None else None
        if problem:
            raise ValueError(problem)
        return fmt

    @field_validator("date_formats")
    @classmethod
    def _each_reads_whole_dates(cls, formats: dict[str, str]) -> dict[str, str]:
        problems = [f"{column}: {problem}" for column, fmt in formats.items()
                    if (problem := date_format_problem(fmt))]
        if problems:
            raise ValueError("; ".join(problems))
        return formats

    @field_validator("columns")
    @classmethod
    def _needs_required(cls, columns: dict[str, str | ColumnSource]) -> dict[str, str | ColumnSource]:
        missing = [c for c in REQUIRED_COLUMNS if c not in columns and c != "s3_uri"]
        if missing:
            raise ValueError(f"columns: no source given for required {', '.join(missing)}")
        if not any(c in columns for c in PARTY_COLUMNS):
            raise ValueError("columns: a source for associated_party_id or associated_party_email is required")
        return columns

    @model_validator(mode="after")
    def _values_for_mapped_columns(self) -> Layout:
        stray = [c for c in self.values if c not in self.columns and not (self.files and c == "side")]
        if stray:
            raise ValueError(f"values: given for unmapped column(s) {', '.join(stray)}")
        if self.files and ("s3_uri" in self.columns or "side" in self.columns):
            raise ValueError("files: replaces columns.s3_uri and columns.side; give one or the other")
        if not self.files and "s3_uri" not in self.columns:
            raise ValueError("columns: no source given for required s3_uri (or list the file columns under files)")
        self._check_carry_columns()
        return self

    def _check_carry_columns(self) -> None:
        """Carried columns land in the report unmasked: refuse personal ones and names the report already has."""
        carried = [c.strip().lower() for c in self.carry_columns]
        if len(set(carried)) != len(carried):
            raise ValueError("carry_columns: a column is named twice")
        personal = {self.source(c).column.strip().lower(): c for c in PERSONAL_COLUMNS if c in self.columns}
        for name, key in zip(self.carry_columns, carried, strict=True):
            if key in personal:
                raise ValueError(f"carry_columns: {name!r} feeds {personal[key]}, personal data that the report never "
                                 "shows; carry only non-personal ids")
            if key in _REPORT_NAMES:
                raise ValueError(f"carry_columns: {name!r} is a column the report has already")

    def date_format_of(self, column: str) -> str | None:
        """The strptime format of a date column: its own ``date_formats`` entry, else ``date_format``; None for a
        column that is not a date."""
        if column not in DATE_COLUMNS:
            return None
        return self.date_formats.get(column) or self.date_format  # type: ignore[call-overload]

    def mapped(self) -> set[str]:
        """Canonical columns this layout produces (files give s3_uri and side; a generated document_id)."""
        return set(self.columns) | ({"s3_uri", "side", "document_id"} if self.files else set())

    def source_columns(self) -> list[str]:
        """Every source column this layout reads."""
        return [self.source(c).column for c in self.columns] + [f.column for f in self.files] + self.carry_columns

    def source(self, canonical: str) -> ColumnSource:
        """The source of a mapped canonical column."""
        src = self.columns[canonical]  # type: ignore[index]
        return src if isinstance(src, ColumnSource) else ColumnSource(column=src, prefix="")

    def missing_in(self, header: Sequence[str]) -> list[str]:
        """Source columns this layout needs that ``header`` lacks."""
        have = {h.strip().lower() for h in header}
        return [c for c in self.source_columns() if c.strip().lower() not in have]


class LegacyMapping(BaseModel):
    """A mapping file: one or more source layouts; a file uses the first layout its header fits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", description="What archive this maps, for people.")

    def digest(self) -> str:
        """A fingerprint of what the mapping says, not of how its file is written (comments, order of keys):
        the same archive run with a corrected mapping is new work for the migration."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
    encoding: str | None = Field(
        None,
        description="Text encoding of the CSV files (e.g. cp1252); detected (charset-normalizer) when absent "
        "and the file is not UTF-8.",
    )
    delimiter: str | None = Field(
        None, min_length=1, max_length=1, description="Field delimiter of the CSV files; sniffed when absent."
    )
    layouts: list[Layout] = Field(min_length=1, description="Source layouts, tried in order.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str | None) -> str | None:
        import codecs

        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ValueError(f"unknown encoding {encoding!r}") from None
        return encoding

    def layout_for(self, header: Sequence[str], *, encoding: str | None = None) -> Layout:
        """The first layout whose source columns are all in ``header``; ``MappingError`` naming what is missing,
        and saying to set ``encoding:`` when the header looks decoded with the wrong one (``encoding``: the one
        it was read with)."""
        problems = []
        lacking: list[str] = []
        for layout in self.layouts:
            missing = layout.missing_in(header)
            if not missing:
                return layout
            lacking += missing
            problems.append(f"layout '{layout.name}' lacks column(s) {', '.join(repr(m) for m in missing)}")
        hint = ""
        if looks_misdecoded(header, lacking):
            hint = (f"; the header looks decoded with the wrong encoding{f' ({encoding})' if encoding else ''}: "
                    "set `encoding:` in the mapping file to the file's own (e.g. utf-8, cp1252, latin-1)")
        raise MappingError("mapping: no layout fits the file's header: " + "; ".join(problems) + hint)

    def mapped_columns(self, header: Sequence[str], *, encoding: str | None = None) -> list[str]:
        """The canonical column names a file with ``header`` will have after mapping."""
        return [c for c in CANONICAL_COLUMNS if c in self.layout_for(header, encoding=encoding).mapped()]


# What a wrong decoding leaves in a header: the replacement character (bytes the encoding cannot read) and C1
# controls (bytes 0x80-0x9F read as Latin-1).
_UNDECODED = re.compile("[\ufffd\x80-\x9f]")


def looks_misdecoded(header: Sequence[str], missing: Sequence[str]) -> bool:
    """Whether a header that lacks ``missing`` columns was probably read with the wrong text encoding.

    Either it holds undecodable bytes, or a missing name with non-ASCII letters is in the header with those
    letters garbled: the same ASCII letters around 1 to 4 other characters (UTF-8's "ü" read as Latin-1 is
    "Ã¼", as cp1250 "ĂĽ"; a Latin-1 "ü" read as UTF-8 is "\ufffd").
    """
    if any(_UNDECODED.search(h) for h in header):
        return True
    names = {h.strip().casefold() for h in header}
    for name in missing:
        folded = name.strip().casefold()
        if folded.isascii():
            continue
        pattern = re.compile("".join(re.escape(c) if c.isascii() else "[^\x00-\x7f]{1,4}" for c in folded))
        if any(pattern.fullmatch(h) for h in names if h != folded):
            return True
    return False


def date_format_problem(fmt: str) -> str | None:
    """What is wrong with a strptime format for whole dates, or None: it must read back the day, month and year
    it writes (``dd.mm.yyyy``, ``%d.%m`` and ``%Q`` do not)."""
    probe = datetime(2021, 3, 14)
    try:
        read = datetime.strptime(probe.strftime(fmt), fmt)
    except ValueError as exc:
        return f"{fmt!r} is not a strptime format ({exc}); e.g. '%d.%m.%Y' reads 14.03.2021"
    if read.date() != probe.date():
        return (f"{fmt!r} does not read a whole date (it needs a day, a month and a year, such as %d, %m and %Y); "
                "e.g. '%d.%m.%Y' reads 14.03.2021")
    return None


#: Columns whose unconverted values ``kyc-attach validate`` lists: codes and dates, never personal data.
REPORTED_COLUMNS: tuple[str, ...] = ("document_type", "country", "side", *DATE_COLUMNS)
_DIGIT = re.compile(r"\d")


_LETTER = re.compile(r"[^\W\d_]")


def shown_value(column: str, value: str) -> str:
    """How ``validate`` may print an unconverted source value: codes as they are, dates with digits as 9; anything
    that could be a person's data (an e-mail, a number-like code, a long text: a mapping with its columns mixed up
    feeds those here) only as its shape, letters as a and digits as 9."""
    if "@" in value or len(value) > 40 or (column not in DATE_COLUMNS and _DIGIT.search(value)):
        return _LETTER.sub("a", _DIGIT.sub("9", value))
    return _DIGIT.sub("9", value) if column in DATE_COLUMNS else value


@dataclass
class MappingReport:
    """Source values the mapping could not convert, by canonical column (dates as patterns: digits as 9)."""

    unconverted: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, column: str, value: str, count: int) -> None:
        """Count a source value that did not convert, shown only as far as it cannot be personal data."""
        self.unconverted.setdefault(column, Counter())[shown_value(column, value)] += count

    def merge(self, other: MappingReport) -> None:
        """Add another batch's counts."""
        for column, counts in other.unconverted.items():
            self.unconverted.setdefault(column, Counter()).update(counts)


def apply_mapping(
    table: pa.Table, mapping: LegacyMapping, *, first_source_row: int = 1, report: MappingReport | None = None,
    with_source_row: bool = False,
) -> pa.Table:
    """``table`` (a legacy layout) as canonical columns; values that do not convert are left for validation.

    ``first_source_row`` numbers the batch's source rows (for generated document ids); ``report``, when given,
    collects the source values of ``REPORTED_COLUMNS`` that did not convert; ``with_source_row`` adds each row's
    source row number (``SOURCE_ROW_KEY``, for ``split_carried``).
    """
    layout = mapping.layout_for(table.column_names)
    index = {n.strip().lower(): i for i, n in reversed(list(enumerate(table.column_names)))}
    out: dict[str, pa.Array] = {}
    for name in CANONICAL_COLUMNS:
        if name not in layout.columns:
            continue
        src = layout.source(name)
        col = _as_string(table.column(index[src.column.strip().lower()]))
        steps: list[Callable[[str], str]] = []
        if src.prefix:
            steps.append(_prefixer(src.prefix))
        if name in layout.values:
            steps.append(_value_mapper(layout.values[name]))
        date_format = layout.date_format_of(name)
        if date_format:
            steps.append(_date_converter(date_format))
        if name == "country" and layout.country_to_alpha3:
            steps.append(to_alpha3)
        check = _CONVERTED.get(name) if report is not None else None
        out[name] = _per_distinct(col, steps, name, check, report) if steps or check else col
    for name in layout.carry_columns:
        out[carry_key(name)] = _as_string(table.column(index[name.strip().lower()]))
    if with_source_row:
        out[SOURCE_ROW_KEY] = pa.array(np.arange(first_source_row, first_source_row + table.num_rows, dtype=np.int64))
    if layout.files:
        out = _expand_files(table, index, layout, out, first_source_row, report)
    return pa.table(out)


def carry_key(column: str) -> str:
    """The name a carried source column has in a mapped batch (apart from the canonical names it may share)."""
    return CARRY_PREFIX + column


def split_carried(batch: pa.Table, layout: Layout) -> tuple[pa.Table, pa.Table | None]:
    """A mapped batch as (its canonical columns, what joins the report back to the archive or None).

    The second holds ``source_row`` and the generated ``document_id`` (when the batch has its source rows) and the
    carried columns under their source names.
    """
    carried: dict[str, pa.ChunkedArray] = {}
    if SOURCE_ROW_KEY in batch.column_names:
        carried["source_row"] = batch.column(SOURCE_ROW_KEY)
        if layout.files and "document_id" not in layout.columns:
            carried["document_id"] = batch.column("document_id")
        batch = batch.drop_columns([SOURCE_ROW_KEY])
    if not carried and not layout.carry_columns:
        return batch, None
    keys = [carry_key(c) for c in layout.carry_columns]
    carried.update({c: batch.column(k) for c, k in zip(layout.carry_columns, keys, strict=True)})
    return batch.drop_columns(keys), pa.table(carried)


def _expand_files(
    table: pa.Table,
    index: dict[str, int],
    layout: Layout,
    out: dict[str, pa.Array],
    first_source_row: int,
    report: MappingReport | None,
) -> dict[str, pa.Array]:
    """One row per non-empty file column of each source row, in source order (front before back)."""
    n = table.num_rows
    uris, sides, source_rows = [], [], []
    filled = pa.array(np.zeros(n, dtype=bool))
    for k, f in enumerate(layout.files):
        col = _as_string(table.column(index[f.column.strip().lower()]))
        if f.prefix:
            col = _per_distinct(col, [_prefixer(f.prefix)], "s3_uri", None, None)
        present = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0), False)
        filled = pc.or_(filled, present)
        rows = pc.indices_nonzero(present)
        uris.append(pc.take(col, rows))
        sides.append(pa.array([f.side] * len(rows), pa.string()))
        # sort key: source row first, then the file column's order
        source_rows.append(pc.add(pc.multiply(pc.cast(rows, pa.int64()), len(layout.files)), k))
    # A source row with no file at all stays, as one row without an s3_uri: validation rejects it (missing_field)
    # and the report accounts for it, instead of the archive row vanishing.
    empty = pc.indices_nonzero(pc.invert(filled))
    uris.append(pa.nulls(len(empty), pa.string()))
    sides.append(pa.nulls(len(empty), pa.string()))
    source_rows.append(pc.multiply(pc.cast(empty, pa.int64()), len(layout.files)))
    order = pc.sort_indices(pa.chunked_array(source_rows, pa.int64()))
    keys = pc.take(pa.chunked_array(source_rows, pa.int64()), order)
    row_of = pc.divide(keys, len(layout.files))  # integer division on int64
    expanded = {name: pc.take(col, row_of) for name, col in out.items()}
    expanded["s3_uri"] = pc.take(pa.chunked_array(uris, pa.string()), order).combine_chunks()
    side = pc.take(pa.chunked_array(sides, pa.string()), order).combine_chunks()
    if "side" in layout.values:
        side = _per_distinct(side, [_value_mapper(layout.values["side"])], "side", None, None)
    if "document_type" in expanded:
        # Only identifying documents have sides: the bill scanned in the "front" column is just a file.
        kind = pc.utf8_upper(pc.utf8_trim_whitespace(expanded["document_type"]))
        identifying = pc.is_in(kind, value_set=pa.array(sorted(_IDENTIFYING), pa.string()))
        side = pc.if_else(pc.fill_null(identifying, False), side, pa.scalar(None, pa.string()))
    expanded["side"] = side
    if "document_id" not in layout.columns:
        # One source row is one document: a stable id from its position in the archive (runs agree on it).
        numbers = pc.add(row_of, first_source_row)
        expanded["document_id"] = pc.binary_join_element_wise("src-", pc.cast(numbers, pa.string()), "")
    return {name: expanded[name]
            for name in (*CANONICAL_COLUMNS, *map(carry_key, layout.carry_columns), SOURCE_ROW_KEY)
            if name in expanded}


def _as_string(col: pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return arr if arr.type == pa.string() else pc.cast(arr, pa.string())


def _per_distinct(
    col: pa.Array,
    steps: list[Callable[[str], str]],
    name: str,
    converted_ok: Callable[[str], bool] | None,
    report: MappingReport | None,
) -> pa.Array:
    """Run the steps once per distinct value and spread the results back over the rows; with a report, count the
    source values whose result is still not a canonical value."""
    enc = pc.dictionary_encode(col)
    source = enc.dictionary.to_pylist()
    converted = []
    for value in source:
        for step in steps:
            value = step(value) if value is not None else value
        converted.append(value)
    if report is not None and converted_ok is not None:
        bad = [i for i, v in enumerate(converted) if v is not None and v.strip() and not converted_ok(v)]
        if bad:
            counts = np.bincount(np.asarray(pc.fill_null(enc.indices, -1)) + 1, minlength=len(source) + 1)
            for i in bad:
                report.add(name, str(source[i]).strip(), int(counts[i + 1]))
    return pc.take(pa.array(converted, pa.string()), enc.indices)


_IDENTIFYING = frozenset(IDENTIFYING_TYPES)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Per reported column: is a (mapped) value canonical? Normalisation (trim, upper-case) is validation's.
_CONVERTED: dict[str, Callable[[str], bool]] = {
    "document_type": lambda v: v.strip().upper() in CATEGORY_OF_TYPE,
    "side": lambda v: v.strip().upper() in ("FRONT", "BACK"),
    "country": lambda v: pycountry.countries.get(alpha_3=v.strip().upper()) is not None,
    **{c: (lambda v: _ISO_DATE.fullmatch(v.strip()) is not None) for c in DATE_COLUMNS},
}


# Common date shapes (digits as 9) and the format that reads them; day-first where both could be meant, as
# European archives write them. A guess for a person to confirm, never applied by itself.
_FORMAT_OF_SHAPE = {
    "99.99.9999": "%d.%m.%Y",
    "99/99/9999": "%d/%m/%Y",
    "99-99-9999": "%d-%m-%Y",
    "99999999": "%Y%m%d",
    "9999/99/99": "%Y/%m/%d",
    "9999.99.99": "%Y.%m.%d",
}


def unconverted_hint(column: str, examples: Sequence[str], configured: str | None = None) -> str:
    """What to add to the mapping so such values convert (for ``kyc-attach validate``); ``configured`` is the
    date format the layout already has for the column, never proposed again."""
    if column in DATE_COLUMNS:
        shaped = [_FORMAT_OF_SHAPE[e] for e in examples if e in _FORMAT_OF_SHAPE]
        guess = next((g for g in shaped if g != configured), None if configured else "%d.%m.%Y")
        if guess is None and shaped:
            return (f"These dates have the shape of the layout's format {configured} for {column} but are not "
                    "real dates (a 31st of February, a 13th month): no other format reads them; they stay "
                    "rejected as bad_date, to be corrected in the archive.")
        if guess is None:
            return (f"These values are not dates in the layout's format {configured} for {column}, nor in a "
                    "shape a format is known for (9 stands for any digit; words such as an undated expiry cannot "
                    "convert): they stay rejected as bad_date.")
        return (
            f'To read these dates add to the layout: date_formats: {{{column}: "{guess}"}} (or date_format for '
            "every date column). 9 stands for any digit; words (an undated expiry) cannot convert and stay "
            "rejected as bad_date."
        )
    choices = {
        "document_type": "one of " + ", ".join(sorted(CATEGORY_OF_TYPE)),
        "side": "FRONT or BACK",
        "country": "an ISO 3166-1 alpha-3 code such as DEU (names in any language pycountry knows convert already)",
    }[column]
    lines = "\n".join(
        f"        {v}: ...   # {choices}" if i == 0 else f"        {v}: ..." for i, v in enumerate(examples)
    )
    head = "To convert these add to the layout (each value mapped to its canonical one):"
    return f"{head}\n    values:\n      {column}:\n{lines}"


def explain_date_rejects(validated: pa.Table, layout: Layout) -> pa.Table:
    """Validation's bad-date messages say YYYY-MM-DD; for a mapped date column, name the mapping's format too."""
    message = validated.column("message")
    for name in DATE_COLUMNS:
        fmt = layout.date_format_of(name)
        if not fmt or name not in layout.columns:
            continue
        old = f"{name}: not a real date in the form YYYY-MM-DD"
        new = f"{name}: not a real date in the mapping's format {fmt} (nor YYYY-MM-DD)"
        message = pc.if_else(pc.fill_null(pc.equal(message, old), False), new, message)
    return validated.set_column(validated.schema.get_field_index("message"), "message", message)


def _prefixer(prefix: str) -> Callable[[str], str]:
    def add(value: str) -> str:
        text = value.strip()
        if not text or "://" in text:
            return value
        return prefix.rstrip("/") + "/" + text.lstrip("/")

    return add


def _value_mapper(table: dict[str, str]) -> Callable[[str], str]:
    folded = {k.strip().casefold(): v for k, v in table.items()}

    def convert(value: str) -> str:
        return folded.get(value.strip().casefold(), value)

    return convert


def _date_converter(fmt: str) -> Callable[[str], str]:
    def convert(value: str) -> str:
        text = value.strip()
        if not text:
            return value
        try:
            # datetime.strptime rejects 31/02 outright (pyarrow's strptime would roll it over to March).
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            return value

    return convert


@lru_cache(maxsize=4096)
def to_alpha3(value: str) -> str:
    """An alpha-2 code, alpha-3 code or country name (English or any language pycountry translates) as ISO 3166-1
    alpha-3; unchanged when unknown."""
    text = value.strip()
    if not text:
        return value
    try:
        return str(pycountry.countries.lookup(text).alpha_3)
    except LookupError:
        return _translated_names().get(text.casefold(), value)


@lru_cache(maxsize=1)
def _translated_names() -> dict[str, str]:
    """Country name (case-folded) in every language pycountry ships a catalogue for → alpha-3.

    Built once, on the first name the English lookup does not know (~0.5 s for ~160 languages). A name that means
    different countries in two languages is left out rather than guessed.
    """
    seen: dict[str, set[str]] = {}
    countries = list(pycountry.countries)
    for lang in _languages():
        try:
            catalogue = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
        except OSError:
            continue
        for c in countries:
            for english in {c.name, getattr(c, "official_name", c.name), getattr(c, "common_name", c.name)}:
                local = catalogue.gettext(english)
                if local != english:
                    seen.setdefault(local.casefold(), set()).add(c.alpha_3)
    return {name: next(iter(codes)) for name, codes in seen.items() if len(codes) == 1}


def _languages() -> list[str]:
    """The languages of pycountry's own catalogues (data shipped in the package, read like its JSON tables)."""
    import os

    return sorted(os.listdir(pycountry.LOCALES_DIR))
