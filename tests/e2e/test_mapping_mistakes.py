"""Mistakes in a legacy archive's mapping, through `kyc-attach validate` and real runs: nothing personal printed,
no row lost, a corrected mapping attaches nothing twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.commands.cli import app

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = ROOT / "tests/fixtures/legacy/carrier_c/archive.csv"
MAPPING = ROOT / "mappings/carrier_c.yaml"


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_validate_with_a_wrong_mapping_prints_emails_and_document_numbers(tmp_path: Path) -> None:
    """operations.md: validate lists the source values the mapping left unconverted, 'never a value that could be
    personal'. A mapping with two columns mixed up (the usual first draft: type <- the number column, country <-
    the e-mail column) makes validate print every document number and e-mail of the archive, with a ready-made
    `values:` block to paste them into the mapping file (which then holds personal data too)."""
    wrong = MAPPING.read_text(encoding="utf-8").replace(
        "document_type: Dokumentart", "document_type: Ausweisnummer").replace(
        "country: Ausstellungsland", "country: Ansprechpartner E-Mail")
    mapping = tmp_path / "wrong.yaml"
    mapping.write_text(wrong, encoding="utf-8")
    result = _cli(["validate", str(ARCHIVE), "--mapping", str(mapping)])
    out = result.stdout + result.stderr
    assert "@example.de" not in out.lower(), "an e-mail address is printed"
    assert "C0P0001" not in out, "a document number is printed"


def _archive_with_rows(tmp_path: Path, lines: list[int], blank_images_of_first: bool) -> Path:
    raw = ARCHIVE.read_bytes().splitlines(keepends=True)
    picked = [raw[0]] + [raw[i] for i in lines]
    if blank_images_of_first:
        picked[1] = picked[1].replace(b"akten/0/pass-vorne.pdf;", b";")
    path = tmp_path / "archive.csv"
    path.write_bytes(b"".join(picked))
    return path


def test_files_layout_row_with_both_image_cells_empty_is_not_silently_dropped(tmp_path: Path) -> None:
    """A carrier_c archive row (a passport) whose `Bild Vorderseite` and `Bild Rückseite` are both empty. README:
    every input row gets one status. Found: the row produces no file row at all: validate says 'rows 1 ... Every row
    passes' for a 2-row archive, and a run's report has no line for it (rows_in counts file rows), so the document
    vanishes from the report instead of being `rejected` (missing s3_uri)."""
    archive = _archive_with_rows(tmp_path, [1, 3], blank_images_of_first=True)
    result = _cli(["validate", str(archive), "--mapping", str(MAPPING)])
    assert result.exit_code == 1, result.stdout  # a row would be rejected
    assert "rows 2" in result.stdout, result.stdout


def test_archive_whose_only_row_has_no_images_is_not_a_successful_empty_run(tmp_path: Path) -> None:
    """The same with the empty row alone: validate says 'rows 0 valid 0 ... Every row passes' and exits 0, and a
    real run finishes with rows_in 0 and exit 0: the 'run that succeeds on nothing' the header-only rule exists
    to prevent (input-and-privacy.md)."""
    archive = _archive_with_rows(tmp_path, [1], blank_images_of_first=True)
    result = _cli(["validate", str(archive), "--mapping", str(MAPPING)])
    assert result.exit_code != 0, result.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_correcting_swapped_sides_in_a_mapping_does_not_attach_the_ids_again(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """'Changing the mapping': the first mapping had the image columns the wrong way round (Vorderseite -> BACK,
    Rückseite -> FRONT); Fin accepted the IDs (one FRONT, one BACK). The operator fixes the mapping and runs the
    archive again. The files and documents are the same, but the side is part of the identity, so every two-sided
    document is attached a second time (now with the sides right): duplicates at Fin. Expected: already_attached
    (as for a corrected document number), or at least a warning that these are re-sends of attached files."""
    from collections import Counter

    from tests.support.legacy_archives import stage_archive
    from tests.support.scenario import api_env, load_world, sandbox_record

    archive, mapping, world, _ = stage_archive("carrier_c", bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    from connectors.objects import ObjectStore
    from connectors.s3 import Location, S3Store, make_s3_client

    store = ObjectStore(S3Store(make_s3_client()))
    good = store.read(Location.parse(mapping)).decode()
    swapped = good.replace("side: FRONT", "side: TMP").replace("side: BACK", "side: FRONT").replace(
        "side: TMP", "side: BACK")
    store.write(Location(bucket, "mappings/swapped.yaml"), swapped.encode())
    reports = f"s3://{bucket}/reports"
    first = _cli(["run", archive, "--report-uri", reports, "--mapping", f"s3://{bucket}/mappings/swapped.yaml",
                  "--run-id", "s1", "--no-progress"])
    assert first.exit_code == 0, first.output
    second = _cli(["run", archive, "--report-uri", reports, "--mapping", mapping, "--run-id", "s2", "--no-progress"])
    assert second.exit_code == 0, second.output
    record = sandbox_record(fin_sandbox.url)
    twice = Counter((a["customer_id"], a["associated_party_id"], a["type"],
                     tuple(sorted(f["sha256"] for f in a["files"]))) for a in record["attachments"])
    assert [k[2] for k, n in twice.items() if n > 1] == [], "the same files attached twice as the same document"
