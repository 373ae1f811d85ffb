"""Every case of the hostile corpus (tests/fixtures/hostile/rows.csv) through the whole flow, one test each.

Each corpus row says which case it belongs to and how it must end (``expect_status``, ``expect_reason``);
the run is real (Prefect, the S3 server, the Fin sandbox), with a 4 KiB file cap and only
``s3://<bucket>/docs/`` allowed as a source.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from tests.hostile.helpers import CORPUS, CorpusRun
from tests.support.scenario import read_report

pytestmark = pytest.mark.slow


def _cases() -> list[str]:
    with (CORPUS / "rows.csv").open(newline="", encoding="utf-8") as fh:
        return sorted({r["case"] for r in csv.DictReader(fh)})


@pytest.mark.parametrize("case", _cases())
def test_case_ends_as_expected(case: str, corpus_run: CorpusRun) -> None:
    report = read_report(corpus_run.real)
    seen = [
        (i + 1, want["expect_status"], want["expect_reason"] or None, got["status"], got["reason_code"])
        for i, (want, got) in enumerate(zip(corpus_run.rows, report, strict=True))
        if want["case"] == case
    ]
    assert seen, case
    for row_number, status, reason, got_status, got_reason in seen:
        assert (got_status, got_reason) == (status, reason), f"row {row_number} of case {case}"


def test_every_row_accounted_for(corpus_run: CorpusRun) -> None:
    report = read_report(corpus_run.real)
    assert [r["row_number"] for r in report] == list(range(1, len(corpus_run.rows) + 1))
    s = corpus_run.real
    assert s["counts_add_up"] and s["rows_in"] == s["rows_out"] == len(corpus_run.rows)
    want = Counter(r["expect_status"] for r in corpus_run.rows)
    assert {k: v for k, v in s["by_status"].items() if v} == dict(want)


def test_sandbox_got_exactly_the_good_documents(corpus_run: CorpusRun) -> None:
    record = corpus_run.record
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}
    attached = Counter((a["customer_id"][:8], a["type"]) for a in record["attachments"])
    assert attached == {
        ("0f8e3c52", "PASSPORT"): 1, ("0f8e3c52", "NATIONAL_ID"): 1,
        ("1a9f4d63", "UTILITY_BILL"): 1, ("1a9f4d63", "MATRICULATE_ID"): 1, ("1a9f4d63", "PASSPORT"): 1,
        ("2ba05e74", "PASSPORT"): 1, ("2ba05e74", "BANK_STATEMENT"): 1, ("2ba05e74", "VISA"): 1,
    }
    # Files are uploaded only for documents that passed every rule before upload; the one exception is the
    # good side of a document whose other side's bytes turned out wrong (both sides upload side by side).
    def name_of(uri: str) -> str:
        return hashlib.sha256(uri.encode()).hexdigest()[:16]

    may = {name_of(r["s3_uri"]) for r in corpus_run.rows
           if r["expect_status"] == "attached" or r["case"] == "bad_file_fails_its_document"}
    must = {name_of(r["s3_uri"]) for r in corpus_run.rows if r["expect_status"] == "attached"}
    uploaded = {u["uri"].rsplit("_", 1)[-1].split(".")[0] for u in record["uploads"]}
    assert must <= uploaded <= may


def test_dry_run_of_the_corpus_rejects_the_same_rows_before_the_api(corpus_run: CorpusRun) -> None:
    """A dry run checks files as the upload does (ranged reads of head and tail: type and structure), so only
    the party checks, which need the API, wait for the real run."""
    real = {r["row_number"]: r for r in read_report(corpus_run.real)}
    dry = read_report(corpus_run.dry)
    needs_api = {"party_not_found", "party_mismatch"}
    for r in dry:
        want = real[r["row_number"]]
        if want["status"] == "attached" or want["reason_code"] in needs_api:
            assert r["status"] in ("skipped", "rejected"), r
        else:
            assert (r["status"], r["reason_code"]) == (want["status"], want["reason_code"]), r


def test_corpus_is_small_and_committed() -> None:
    size = sum(p.stat().st_size for p in Path(CORPUS).rglob("*") if p.is_file())
    assert size < 64 * 1024
