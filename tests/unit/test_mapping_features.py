"""Legacy mappings: several file columns per row, document ids, country names in other languages, the values a
mapping leaves unconverted, and the CSV dialect of an archive (encoding, delimiter)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from connectors.errors import SetupError
from connectors.manifest import Manifest, read_columns, with_dialect
from flows.plan import readable
from transforms.mapping import LegacyMapping, MappingReport, apply_mapping, to_alpha3, unconverted_hint

LAYOUT = {
    "name": "two-images",
    "columns": {"customer_id": "Kunde", "associated_party_email": "Mail", "document_type": "Art",
                "document_number": "Nr", "country": "Land", "issue_date": "Von", "expiry_date": "Bis"},
    "files": [{"column": "Vorne", "side": "FRONT", "prefix": "s3://b/"}, {"column": "Hinten", "side": "BACK"}],
    "values": {"document_type": {"Ausweis": "NATIONAL_ID", "Pass": "PASSPORT", "Strom": "UTILITY_BILL"}},
    "date_format": "%d.%m.%Y",
}


def source(rows: list[dict[str, str]]) -> pa.Table:
    names = ["Kunde", "Mail", "Art", "Nr", "Land", "Von", "Bis", "Vorne", "Hinten"]
    return pa.table({n: pa.array([r.get(n, "") for r in rows], pa.string()) for n in names})


def test_one_source_row_becomes_one_file_row_per_filled_image_column_of_one_document() -> None:
    table = source([
        {"Art": "Ausweis", "Land": "Deutschland", "Vorne": "a/front.jpg", "Hinten": "s3://c/a/back.png"},
        {"Art": "Pass", "Land": "Österreich", "Vorne": "p.pdf"},
        {"Art": "Strom", "Vorne": "bill.pdf"},
    ])
    out = apply_mapping(table, LegacyMapping(layouts=[LAYOUT]), first_source_row=41)
    assert out.column("s3_uri").to_pylist() == ["s3://b/a/front.jpg", "s3://c/a/back.png", "s3://b/p.pdf",
                                                "s3://b/bill.pdf"]
    assert out.column("side").to_pylist() == ["FRONT", "BACK", "FRONT", None]  # a bill has no side
    assert out.column("document_id").to_pylist() == ["src-41", "src-41", "src-42", "src-43"]
    assert out.column("country").to_pylist() == ["DEU", "DEU", "AUT", ""]
    assert out.column("document_type").to_pylist() == ["NATIONAL_ID", "NATIONAL_ID", "PASSPORT", "UTILITY_BILL"]


def test_a_mapped_document_id_column_wins_over_the_generated_one() -> None:
    layout = {**LAYOUT, "columns": {**LAYOUT["columns"], "document_id": "Nr"}}
    out = apply_mapping(source([{"Art": "Pass", "Nr": "X1", "Vorne": "p.pdf"}]), LegacyMapping(layouts=[layout]))
    assert out.column("document_id").to_pylist() == ["X1"]


def test_files_and_a_single_s3_uri_column_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="files"):
        LegacyMapping(layouts=[{**LAYOUT, "columns": {**LAYOUT["columns"], "s3_uri": "Vorne"}}])


@pytest.mark.parametrize(("name", "code"), [("Deutschland", "DEU"), ("Schweiz", "CHE"), ("Espagne", "ESP"),
                                            ("Vereinigtes Königreich", "GBR"), ("fr", "FRA"), ("Atlantis", "Atlantis")])
def test_country_names_in_any_language_pycountry_translates(name: str, code: str) -> None:
    assert to_alpha3(name) == code


def test_unconverted_values_are_counted_with_dates_as_shapes_and_the_hint_names_a_format() -> None:
    report = MappingReport()
    rows = [{"Art": "Führerschein", "Land": "Absurdistan", "Von": "2021/03/15", "Bis": "unbefristet", "Vorne": "a"},
            {"Art": "Führerschein", "Land": "Deutschland", "Von": "01.02.2021", "Bis": "01.02.2031", "Vorne": "b"}]
    apply_mapping(source(rows), LegacyMapping(layouts=[LAYOUT]), report=report)
    assert report.unconverted == {"document_type": {"Führerschein": 2}, "country": {"Absurdistan": 1},
                                  "issue_date": {"9999/99/99": 1}, "expiry_date": {"unbefristet": 1}}
    assert '"%Y/%m/%d"' in unconverted_hint("issue_date", ["9999/99/99"])
    assert "Führerschein: ..." in unconverted_hint("document_type", ["Führerschein"])


def _manifest(path: Path) -> Manifest:
    return Manifest(str(path), path, "x", "csv")


def test_a_cp1252_semicolon_archive_is_read_by_its_mapping_or_detected(tmp_path: Path) -> None:
    path = tmp_path / "akten.csv"
    path.write_bytes("Kunde;Gültig bis;Bild Rückseite\r\nc;01.01.2030;r.png\r\n".encode("cp1252"))
    named = readable(_manifest(path), LegacyMapping(layouts=[LAYOUT], encoding="cp1252", delimiter=";"))
    detected = with_dialect(_manifest(path), encoding=None, delimiter=None)
    for m in (named, detected):
        assert read_columns(m) == ["kunde", "gültig bis", "bild rückseite"]  # matched ignoring case
    assert detected.delimiter == ";"


def test_a_semicolon_file_without_a_mapping_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("customer_id;document_type;s3_uri;associated_party_id\nx;y;z;w\n")
    with pytest.raises(SetupError, match="';'-delimited"):
        read_columns(_manifest(path))


@pytest.mark.parametrize(("column", "value", "shown"), [
    ("document_type", "Führerschein", "Führerschein"),
    ("document_type", "C0P0001", "a9a9999"),  # a document number in the type column (columns mixed up)
    ("country", "vorstand0.traeger0@example.de", "aaaaaaaa9.aaaaaaa9@aaaaaaa.aa"),
    ("expiry_date", "14.03.2031", "99.99.9999"),
    ("expiry_date", "unbefristet", "unbefristet"),
    ("issue_date", "x@y.de", "a@a.aa"),
])
def test_unconverted_values_that_could_be_personal_are_shown_as_shapes(column: str, value: str, shown: str) -> None:
    from transforms.mapping import shown_value

    assert shown_value(column, value) == shown


def test_a_source_row_with_no_image_stays_as_a_row_without_a_file() -> None:
    table = source([{"Art": "Pass", "Vorne": "p.pdf"}, {"Art": "Pass"}, {"Art": "Pass", "Hinten": "b.png"}])
    out = apply_mapping(table, LegacyMapping(layouts=[LAYOUT]))
    assert out.column("s3_uri").to_pylist() == ["s3://b/p.pdf", None, "b.png"]
    assert out.column("document_id").to_pylist() == ["src-1", "src-2", "src-3"]


# --- carry_columns: archive ids copied into the report ---


def test_carried_columns_follow_their_source_row_through_the_file_expansion() -> None:
    from transforms.mapping import split_carried

    table = source([
        {"Art": "Ausweis", "Vorne": "a/front.jpg", "Hinten": "a/back.png"},
        {"Art": "Pass", "Vorne": "p.pdf"},
    ]).append_column("Satz-ID", pa.array(["A1", "A2"]))
    layout = {**LAYOUT, "carry_columns": ["satz-id"]}  # matched ignoring case, like every source column
    mapping = LegacyMapping(layouts=[layout])
    canonical, carried = split_carried(apply_mapping(table, mapping), mapping.layouts[0])
    assert carried is not None and carried.column_names == ["satz-id"]
    assert carried.column("satz-id").to_pylist() == ["A1", "A1", "A2"]  # front and back rows of one source row
    assert not any(n.startswith("carry:") for n in canonical.column_names)
    assert canonical.num_rows == carried.num_rows


def test_a_carried_column_must_be_in_the_header() -> None:
    mapping = LegacyMapping(layouts=[{**LAYOUT, "carry_columns": ["Satz-ID"]}])
    assert mapping.layouts[0].missing_in(source([]).column_names) == ["Satz-ID"]


@pytest.mark.parametrize(("carry", "match"), [
    (["Nr"], "feeds document_number"),
    (["mail"], "feeds associated_party_email"),
    (["status"], "the report has already"),
    (["Satz", "satz"], "twice"),
])
def test_personal_or_clashing_carry_columns_are_refused(carry: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LegacyMapping(layouts=[{**LAYOUT, "carry_columns": carry}])


def test_without_carry_columns_nothing_is_set_aside() -> None:
    from transforms.mapping import split_carried

    mapping = LegacyMapping(layouts=[LAYOUT])
    out = apply_mapping(source([{"Art": "Pass", "Vorne": "p.pdf"}]), mapping)
    assert split_carried(out, mapping.layouts[0]) == (out, None)


def test_a_mapping_s_digest_follows_what_it_says_not_how_its_file_is_written() -> None:
    import yaml

    text = (Path(__file__).resolve().parents[2] / "mappings" / "carrier_c.yaml").read_text()
    data = yaml.safe_load(text)
    same = LegacyMapping.model_validate(yaml.safe_load("# a comment\n" + yaml.safe_dump(data, sort_keys=True)))
    assert LegacyMapping.model_validate(data).digest() == same.digest()
    changed = dict(data, delimiter="," if data.get("delimiter") != "," else ";")
    assert LegacyMapping.model_validate(changed).digest() != same.digest()


def test_source_rows_and_generated_document_ids_follow_the_file_expansion() -> None:
    from transforms.mapping import split_carried

    table = source([
        {"Art": "Ausweis", "Vorne": "a/front.jpg", "Hinten": "a/back.png"},
        {"Art": "Pass", "Vorne": "p.pdf"},
        {"Art": "Ausweis", "Hinten": "b/back.png"},
    ])
    mapping = LegacyMapping(layouts=[LAYOUT])
    out = apply_mapping(table, mapping, first_source_row=7, with_source_row=True)
    canonical, joined = split_carried(out, mapping.layouts[0])
    assert joined is not None and joined.column_names == ["source_row", "document_id"]
    assert joined.column("source_row").to_pylist() == [7, 7, 8, 9]  # four file rows from three source rows
    assert joined.column("document_id").to_pylist() == ["src-7", "src-7", "src-8", "src-9"]
    assert canonical.column_names == apply_mapping(table, mapping).column_names


def test_a_carry_column_may_not_take_a_name_of_the_report_s_source_columns() -> None:
    with pytest.raises(ValueError, match="the report has already"):
        LegacyMapping(layouts=[{**LAYOUT, "carry_columns": ["Source_Row"]}])
