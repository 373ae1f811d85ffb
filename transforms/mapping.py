"""Legacy archive layouts to canonical manifest columns: renames, value maps, date formats, country codes.

Pure: a mapping (loaded from YAML by ``connectors.mapping_file``) and a table in, a table with canonical
column names out. Every conversion runs once per distinct value of a column, not per row (a million-row
archive has a handful of document types and a few thousand dates), through a dictionary encoding.

A value that cannot be converted is passed on unchanged, so validation rejects its row with the proper
reason (``bad_date``, ``bad_country``, ``unknown_type``, ``bad_side``) instead of the mapping guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pycountry
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from transforms.validate import CANONICAL_COLUMNS, PARTY_COLUMNS, REQUIRED_COLUMNS

DATE_COLUMNS: tuple[str, ...] = ("issue_date", "expiry_date", "document_date")
CanonicalColumn = Literal[
    "customer_id", "associated_party_id", "associated_party_email", "document_type", "document_number",
    "country", "issue_date", "expiry_date", "side", "s3_uri", "document_date", "document_id",
]


class MappingError(ValueError):
    """The mapping does not fit the file (no layout matches its header) or is itself inconsistent."""


class ColumnSource(BaseModel):
    """Where a canonical column comes from: a source column, optionally with a prefix (relative keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(description="Name of the source column (matched case-insensitively).")
    prefix: str = Field("", description="Prepended to relative values, e.g. 's3://archive-bucket/' for keys.")


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
        True, description="Convert alpha-2 codes and country names to ISO 3166-1 alpha-3 (pycountry)."
    )

    @field_validator("columns")
    @classmethod
    def _needs_required(cls, columns: dict[str, str | ColumnSource]) -> dict[str, str | ColumnSource]:
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"columns: no source given for required {', '.join(missing)}")
        if not any(c in columns for c in PARTY_COLUMNS):
            raise ValueError("columns: a source for associated_party_id or associated_party_email is required")
        return columns

    @model_validator(mode="after")
    def _values_for_mapped_columns(self) -> Layout:
        stray = [c for c in self.values if c not in self.columns]
        if stray:
            raise ValueError(f"values: given for unmapped column(s) {', '.join(stray)}")
        return self

    def source(self, canonical: str) -> ColumnSource:
        """The source of a mapped canonical column."""
        src = self.columns[canonical]  # type: ignore[index]
        return src if isinstance(src, ColumnSource) else ColumnSource(column=src, prefix="")

    def missing_in(self, header: Sequence[str]) -> list[str]:
        """Source columns this layout needs that ``header`` lacks."""
        have = {h.strip().lower() for h in header}
        return [self.source(c).column for c in self.columns if self.source(c).column.strip().lower() not in have]


class Mapping(BaseModel):
    """A mapping file: one or more source layouts; a file uses the first layout its header fits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", description="What archive this maps, for people.")
    layouts: list[Layout] = Field(min_length=1, description="Source layouts, tried in order.")

    def layout_for(self, header: Sequence[str]) -> Layout:
        """The first layout whose source columns are all in ``header``; ``MappingError`` naming what is missing."""
        problems = []
        for layout in self.layouts:
            missing = layout.missing_in(header)
            if not missing:
                return layout
            problems.append(f"layout '{layout.name}' lacks column(s) {', '.join(repr(m) for m in missing)}")
        raise MappingError("mapping: no layout fits the file's header: " + "; ".join(problems))

    def mapped_columns(self, header: Sequence[str]) -> list[str]:
        """The canonical column names a file with ``header`` will have after mapping."""
        return [c for c in CANONICAL_COLUMNS if c in self.layout_for(header).columns]


def apply_mapping(table: pa.Table, mapping: Mapping) -> pa.Table:
    """``table`` (a legacy layout) as canonical columns; values that do not convert are left for validation."""
    layout = mapping.layout_for(table.column_names)
    index = {n.strip().lower(): i for i, n in reversed(list(enumerate(table.column_names)))}
    out: dict[str, pa.Array] = {}
    formats = {str(k): v for k, v in layout.date_formats.items()}
    for name in CANONICAL_COLUMNS:
        if name not in layout.columns:
            continue
        src = layout.source(name)
        col = _as_string(table.column(index[src.column.strip().lower()]))
        steps: list[Callable[[str], str]] = []
        if src.prefix:
            steps.append(_prefixer(src.prefix))
        if name in layout.values:
            steps.append(_value_mapper(layout.values[name]))  # type: ignore[index]
        date_format = formats.get(name) or (layout.date_format if name in DATE_COLUMNS else None)
        if date_format:
            steps.append(_date_converter(date_format))
        if name == "country" and layout.country_to_alpha3:
            steps.append(to_alpha3)
        out[name] = _per_distinct(col, steps) if steps else col
    return pa.table(out)


def _as_string(col: pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return arr if arr.type == pa.string() else pc.cast(arr, pa.string())


def _per_distinct(col: pa.Array, steps: list[Callable[[str], str]]) -> pa.Array:
    """Run the steps once per distinct value and spread the results back over the rows."""
    enc = pc.dictionary_encode(col)
    converted = []
    for value in enc.dictionary.to_pylist():
        for step in steps:
            value = step(value)
        converted.append(value)
    return pc.take(pa.array(converted, pa.string()), enc.indices)


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
    """An alpha-2 code, alpha-3 code or country name as ISO 3166-1 alpha-3; unchanged when unknown."""
    text = value.strip()
    if not text:
        return value
    try:
        return str(pycountry.countries.lookup(text).alpha_3)
    except LookupError:
        return value
