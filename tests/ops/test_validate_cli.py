"""``kyc-attach validate``: exit codes and the summary a person reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.commands.cli import app
from flows.commands.demo import manifest_csv

ROOT = Path(__file__).resolve().parents[2]
CUST = "6f1c2a3b-1111-4222-8333-444455556666"
PARTY = "f6b13e01-044a-4f74-a70b-d5f66b6449af"


@pytest.fixture(autouse=True)
def _work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYC_ATTACH_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("COLUMNS", "200")


def _row(**kw: str) -> dict[str, str]:
    row = {"customer_id": CUST, "associated_party_id": PARTY, "document_type": "PASSPORT", "document_number": "A1",
           "country": "USA", "issue_date": "2020-01-15", "expiry_date": "2099-01-15", "s3_uri": "s3://docs/p.pdf"}
    row.update(kw)
    return row


def test_all_valid_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(manifest_csv([_row()]))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "rows 1" in result.output and "rejected 0" in result.output


def test_rejections_counted_by_reason_with_meaning_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    rows = [_row(), _row(country="US", document_number="A2", s3_uri="s3://docs/a.pdf"),
            _row(customer_id="nope", s3_uri="s3://docs/b.pdf"),
            _row(document_type="NATIONAL_ID", side="FRONT", s3_uri="s3://docs/c.pdf")]
    path.write_bytes(manifest_csv(rows))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "rows 4" in out and "valid 1" in out and "rejected 3" in out
    for code in ("bad_country", "bad_uuid", "missing_side"):  # missing_side comes from the document rules
        assert code in out
    assert "alpha-2 codes are rejected too" in out


def test_whole_file_problems_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("name,other\nx,y\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "absent.csv")])
    assert result.exit_code == 2


def test_legacy_archive_with_its_mapping() -> None:
    archive = ROOT / "tests" / "fixtures" / "legacy" / "bank_a" / "archive.csv"
    result = CliRunner().invoke(app, ["validate", str(archive), "--mapping", str(ROOT / "mappings" / "bank_a.yaml")])
    assert result.exit_code == 1, result.output
    assert "rows 15" in result.output and "rejected 3" in result.output
    wrong = CliRunner().invoke(app, ["validate", str(archive), "--mapping", str(ROOT / "mappings" / "broker_b.yaml")])
    assert wrong.exit_code == 2


def test_a_bad_row_rejects_its_document_once(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    nid = {"document_type": "NATIONAL_ID", "document_number": "N1"}
    rows = [_row(**nid, side="FRONT", issue_date="2020-02-30", s3_uri="s3://docs/f.pdf"),
            _row(**nid, side="BACK", s3_uri="s3://docs/b.pdf"), _row()]
    path.write_bytes(manifest_csv(rows))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert "rows 3" in result.output and "valid 1" in result.output and "rejected 2" in result.output
    assert "bad_date" in result.output and "document_rejected" in result.output


def test_a_wrong_mapping_lists_the_source_values_it_did_not_convert_and_no_personal_data(tmp_path: Path) -> None:
    """The German carrier archive with a mapping that forgot Führerschein and the date format."""
    mapping = (ROOT / "mappings" / "carrier_c.yaml").read_text()
    wrong = "\n".join(line for line in mapping.splitlines() if "Führerschein" not in line and "date_format" not in line)
    (tmp_path / "wrong.yaml").write_text(wrong)
    archive = ROOT / "tests" / "fixtures" / "legacy" / "carrier_c" / "archive.csv"

    result = CliRunner().invoke(app, ["validate", str(archive), "--mapping", str(tmp_path / "wrong.yaml")])

    assert result.exit_code == 1, result.output
    out = result.output
    assert "Führerschein" in out and "99.99.9999" in out and "unbefristet" in out
    assert '"%d.%m.%Y"' in out  # the format to add, guessed from the shape
    text = archive.read_bytes().decode("cp1252")
    numbers = {line.split(";")[4] for line in text.splitlines()[1:] if line.split(";")[4]}
    emails = {line.split(";")[2] for line in text.splitlines()[1:]}
    assert not [v for v in numbers | emails if v in out]  # never document numbers or emails
