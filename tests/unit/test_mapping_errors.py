"""A mapping that is wrong, or a file read with the wrong encoding, says where and what: the mapping file, the
key, the problem; and ``validate`` never proposes a date format the layout already has."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from connectors.errors import SetupError
from connectors.manifest import open_manifest
from connectors.mapping_file import parse_mapping
from flows.commands.cli import app
from flows.plan import require_columns
from transforms.mapping import looks_misdecoded, unconverted_hint

COLUMNS = {"customer_id": "Kunde", "associated_party_email": "Mail", "document_type": "Art",
           "document_number": "Nr", "country": "Land", "issue_date": "Gültig ab", "expiry_date": "Gültig bis",
           "s3_uri": "Datei"}
HEADER = ";".join(COLUMNS.values())
ROW = "6f1c2a3b-1111-4222-8333-444455556666;a@bb.com;PASSPORT;A123;DEU;01.02.2020;{expiry};s3://kyc-docs/a.pdf"


def mapping_yaml(encoding: str | None = None, **layout: object) -> str:
    top = {"encoding": encoding} if encoding else {}
    return yaml.safe_dump({**top, "delimiter": ";", "layouts": [{"name": "bank-a", "columns": COLUMNS, **layout}]},
                          allow_unicode=True)


@pytest.mark.parametrize(("fmt", "what"), [
    ("%Q", "is not a strptime format ('Q' is a bad directive"),
    ("%d.%m.%", "is not a strptime format (stray % in format"),
    ("%d.%m", "does not read a whole date"),
    ("dd.mm.yyyy", "does not read a whole date"),
    ("", "does not read a whole date"),
])
def test_a_date_format_that_cannot_read_dates_is_refused_naming_the_file_and_the_key(fmt: str, what: str) -> None:
    with pytest.raises(SetupError) as caught:
        parse_mapping(mapping_yaml(date_format=fmt), "s3://maps/bank-a.yaml")
    message = str(caught.value)
    assert message.startswith(f"mapping s3://maps/bank-a.yaml: layouts[0].date_format: {fmt!r} ")
    assert what in message


def test_a_per_column_date_format_is_checked_too() -> None:
    with pytest.raises(SetupError, match=r"^mapping m.yaml: layouts\[0\]\.date_formats: expiry_date: '%m/%Y' does "
                                         "not read a whole date"):
        parse_mapping(mapping_yaml(date_formats={"issue_date": "%d/%m/%Y", "expiry_date": "%m/%Y"}), "m.yaml")


def test_good_date_formats_load() -> None:
    loaded = parse_mapping(mapping_yaml(date_format="%d.%m.%y", date_formats={"expiry_date": "%Y%m%d"}), "m.yaml")
    assert loaded.layouts[0].date_format_of("issue_date") == "%d.%m.%y"
    assert loaded.layouts[0].date_format_of("expiry_date") == "%Y%m%d"
    assert loaded.layouts[0].date_format_of("document_number") is None


@pytest.mark.parametrize(("written", "read"), [("utf-8", "latin-1"), ("utf-8", "cp1250"), ("latin-1", "utf-8")])
def test_missing_columns_in_a_header_read_with_the_wrong_encoding_say_to_set_encoding(
        tmp_path: Path, written: str, read: str) -> None:
    path = tmp_path / "archive.csv"
    path.write_bytes(f"{HEADER}\n{ROW.format(expiry='01.02.2031')}\n".encode(written))
    mapping = parse_mapping(mapping_yaml(encoding=read), "m.yaml")
    manifest = open_manifest(str(path), store=None, cache_dir=tmp_path)
    if read == "utf-8":  # a Latin-1 header is refused as not UTF-8 before any layout is tried, as today
        with pytest.raises(SetupError, match="header is not valid UTF-8"):
            require_columns(manifest, mapping)
        return
    with pytest.raises(SetupError) as caught:
        require_columns(manifest, mapping)
    assert str(caught.value) == (
        "mapping: no layout fits the file's header: layout 'bank-a' lacks column(s) 'Gültig bis', 'Gültig ab'; the "
        f"header looks decoded with the wrong encoding ({read}): set `encoding:` in the mapping file to the file's "
        "own (e.g. utf-8, cp1252, latin-1)")


def test_a_header_that_simply_lacks_a_column_gets_no_encoding_hint() -> None:
    assert not looks_misdecoded(["kunde", "mail", "gültig ab"], ["Gültig bis"])
    assert not looks_misdecoded(["kunde", "gueltig bis"], ["Gültig bis"])
    assert looks_misdecoded(["kunde", "g\ufffdltig bis"], ["Kunde2"])  # undecodable bytes, whatever is missing
    assert looks_misdecoded(["kunde", "gã¼ltig bis"], ["Gültig bis"])


def test_the_date_hint_never_proposes_the_format_the_layout_has() -> None:
    has = unconverted_hint("expiry_date", ["99.99.9999"], "%d.%m.%Y")
    assert "date_formats" not in has and "%d.%m.%Y for expiry_date but are not real dates" in has
    other = unconverted_hint("expiry_date", ["99.99.9999", "99/99/9999"], "%d.%m.%Y")
    assert 'date_formats: {expiry_date: "%d/%m/%Y"}' in other
    words = unconverted_hint("expiry_date", ["unbefristet"], "%d.%m.%Y")
    assert "date_formats" not in words and "stay rejected as bad_date" in words
    assert 'date_formats: {issue_date: "%d.%m.%Y"}' in unconverted_hint("issue_date", ["99.99.9999"])


def test_validate_on_an_impossible_date_does_not_propose_the_configured_format(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    manifest, mapping = tmp_path / "archive.csv", tmp_path / "bank-a.yaml"
    manifest.write_text(f"{HEADER}\n{ROW.format(expiry='31.02.2031')}\n", encoding="utf-8")
    mapping.write_text(mapping_yaml(date_format="%d.%m.%Y"), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(manifest), "--mapping", str(mapping)], catch_exceptions=False,
                                env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "expiry_date: source values the mapping did not convert" in result.output
    assert "date_formats" not in result.output
    assert "not real dates" in result.output
