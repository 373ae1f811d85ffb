"""Which conversion of a legacy mapping applies to which column, and in what order."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from transforms.mapping import LegacyMapping, apply_mapping

COLUMNS = {"customer_id": "Kunde", "associated_party_email": "Mail", "document_type": "Art", "document_number": "Nr",
           "country": "Land", "issue_date": "Von", "expiry_date": "Bis", "s3_uri": "Datei"}


def mapped(row: dict[str, str], **layout: Any) -> dict[str, Any]:
    """The one source row through a layout with ``COLUMNS`` and the given keys; its canonical values."""
    mapping = LegacyMapping(layouts=[{"name": "archive", "columns": COLUMNS, **layout}])
    source = pa.table({c: pa.array([row.get(c, "x")], pa.string()) for c in COLUMNS.values()})
    return apply_mapping(source, mapping).to_pylist()[0]


def test_a_per_column_date_format_wins_over_the_layout_s_date_format() -> None:
    out = mapped({"Von": "13/02/2020", "Bis": "02/13/2031"},
                 date_format="%m/%d/%Y", date_formats={"issue_date": "%d/%m/%Y"})
    assert (out["issue_date"], out["expiry_date"]) == ("2020-02-13", "2031-02-13")


def test_the_date_format_leaves_columns_that_are_not_dates_as_they_are() -> None:
    out = mapped({"Nr": "01/02/2003", "Von": "01/02/2003"}, date_format="%d/%m/%Y")
    assert (out["document_number"], out["issue_date"]) == ("01/02/2003", "2003-02-01")


def test_a_value_map_feeds_the_country_lookup() -> None:
    out = mapped({"Land": "BRD"}, values={"country": {"BRD": "DE"}})
    assert out["country"] == "DEU"
