"""Legacy mapping: pure conversions, file loading, and the example mappings against their archives."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from connectors.errors import SetupError
from connectors.mapping_file import load_mapping, parse_mapping
from connectors.objects import ObjectStore
from transforms.mapping import Layout, LegacyMapping, MappingError, apply_mapping, to_alpha3
from transforms.rules import Rules
from transforms.validate import validate_batch

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 1, 10)


def _mapping(**layout: object) -> LegacyMapping:
    base: dict[str, object] = {"name": "t", "columns": {"customer_id": "C", "associated_party_id": "P",
                                                         "document_type": "T", "s3_uri": "U"}}
    base.update(layout)
    return LegacyMapping(layouts=[Layout.model_validate(base)])


def _table(**cols: list[str | None]) -> pa.Table:
    return pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})


def test_renames_and_drops_unmapped_columns() -> None:
    t = _table(C=["c"], P=["p"], T=["PASSPORT"], U=["s3://b/k"], side=["junk"], X=["x"])
    out = apply_mapping(t, _mapping())
    assert out.column_names == ["customer_id", "associated_party_id", "document_type", "s3_uri"]
    assert out.to_pylist() == [{"customer_id": "c", "associated_party_id": "p", "document_type": "PASSPORT",
                                "s3_uri": "s3://b/k"}]


def test_value_maps_ignore_case_and_spaces_and_pass_unknown_values_through() -> None:
    m = _mapping(values={"document_type": {"DL": "DRIVERS_LICENSE", "Passport": "PASSPORT"}})
    t = _table(C=["c"] * 5, P=["p"] * 5, T=["DL", " passport ", "Visa", None, ""], U=["s3://b/k"] * 5)
    assert apply_mapping(t, m).column("document_type").to_pylist() == [
        "DRIVERS_LICENSE", "PASSPORT", "Visa", None, ""]


@pytest.mark.parametrize(("fmt", "given", "expected"), [
    ("%d/%m/%Y", "14/03/2021", "2021-03-14"),
    ("%d/%m/%Y", "31/02/2021", "31/02/2021"),  # not a real date: left for validation (bad_date)
    ("%d/%m/%Y", "2021-03-14", "2021-03-14"),  # already ISO: unchanged, validation accepts it
    ("%Y%m%d", "20200615", "2020-06-15"),
    ("%d.%m.%Y", " 01.01.2033 ", "2033-01-01"),
])
def test_dates_to_iso(fmt: str, given: str, expected: str) -> None:
    m = _mapping(columns={"customer_id": "C", "associated_party_id": "P", "document_type": "T", "s3_uri": "U",
                          "issue_date": "I"}, date_format=fmt)
    t = _table(C=["c"], P=["p"], T=["PASSPORT"], U=["s3://b/k"], I=[given])
    assert apply_mapping(t, m).column("issue_date").to_pylist() == [expected]


@pytest.mark.parametrize(("given", "expected"), [
    ("GB", "GBR"), ("de", "DEU"), ("USA", "USA"), ("United Kingdom", "GBR"), ("germany", "DEU"),
    ("Atlantis", "Atlantis"), ("", ""),
])
def test_country_to_alpha3(given: str, expected: str) -> None:
    assert to_alpha3(given) == expected


def test_relative_paths_get_the_prefix() -> None:
    m = _mapping(columns={"customer_id": "C", "associated_party_id": "P", "document_type": "T",
                          "s3_uri": {"column": "U", "prefix": "s3://archive/"}})
    t = _table(C=["c"] * 3, P=["p"] * 3, T=["PASSPORT"] * 3, U=["a/b.pdf", "/c.pdf", "s3://other/d.pdf"])
    assert apply_mapping(t, m).column("s3_uri").to_pylist() == [
        "s3://archive/a/b.pdf", "s3://archive/c.pdf", "s3://other/d.pdf"]


def test_first_fitting_layout_wins_and_a_misfit_names_missing_columns() -> None:
    a = Layout.model_validate({"name": "a", "columns": {"customer_id": "A", "associated_party_id": "P",
                                                         "document_type": "T", "s3_uri": "U"}})
    b = Layout.model_validate({"name": "b", "columns": {"customer_id": "B", "associated_party_id": "P",
                                                         "document_type": "T", "s3_uri": "U"}})
    m = LegacyMapping(layouts=[a, b])
    assert m.layout_for(["b", "p", "t", "u"]).name == "b"  # header matched ignoring case
    with pytest.raises(MappingError, match="layout 'a' lacks column\\(s\\) 'A'"):
        m.layout_for(["P", "T", "U"])


def test_layout_must_map_required_columns() -> None:
    with pytest.raises(ValueError, match="required"):
        Layout.model_validate({"name": "x", "columns": {"customer_id": "C", "s3_uri": "U"}})
    with pytest.raises(SetupError, match="mapping: layouts"):
        parse_mapping("layouts: []\n")
    with pytest.raises(SetupError, match="not valid YAML"):
        parse_mapping("layouts: [\n")


@pytest.mark.parametrize(("name", "reasons"), [
    ("bank_a", {"bad_country": 1, "bad_date": 1, "unknown_type": 1}),
    ("broker_b", {"bad_country": 1, "expired": 1}),
])
def test_example_archives_map_to_valid_canonical_rows(name: str, reasons: dict[str, int]) -> None:
    mapping = load_mapping(str(ROOT / "mappings" / f"{name}.yaml"), ObjectStore(None))
    raw = pacsv.read_csv(ROOT / "tests" / "fixtures" / "legacy" / name / "archive.csv",
                         convert_options=pacsv.ConvertOptions(strings_can_be_null=False, column_types={}))
    raw = raw.cast(pa.schema([pa.field(n, pa.string()) for n in raw.column_names]))
    checked = validate_batch(apply_mapping(raw, mapping), rules=Rules(today=TODAY), first_row_number=1)
    got = Counter(r for r in checked.column("reason_code").to_pylist() if r is not None)
    assert got == reasons
    good = checked.filter(checked.column("reason_code").is_null())
    assert set(good.column("document_type").to_pylist()) <= {"PASSPORT", "DRIVERS_LICENSE", "NATIONAL_ID",
                                                                "UTILITY_BILL"}
    assert all(u.startswith("s3://legacy-") for u in good.column("s3_uri").to_pylist())
