"""Whole-file problems: exit 2 with one line on stderr, before Prefect starts and before any API call.

Files that look odd but are fine (BOM, extra columns, quoted newlines, Parquet with non-text types) go
through the plan stage and end row by row. Big inputs (a 1 MB cell, a million rows) are made at run time.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors.errors import SetupError
from connectors.manifest import open_manifest
from connectors.workarea import read_slot_range
from flows.commands.cli import app
from flows.plan import plan_manifest
from tests.hostile.helpers import WHOLE_FILE
from tests.support.scenario import sandbox_record
from transforms.rules import Rules

C1 = "0f8e3c52-6d1a-4b7e-9a21-3c5d7e9f1a01"
P1 = "5b2d7c1e-8f3a-4d6b-a1c9-2e4f6a8b0c11"
TODAY = dt.date(2026, 1, 10)

# file -> what the one line on stderr must say
WHOLE_FILE_CASES = {
    "empty.csv": "manifest: the file is empty",
    "header_only.csv": "manifest: no data rows (only a header)",
    "missing_column.csv": "missing required column 's3_uri'",
    "no_party_column.csv": "one of 'associated_party_id' or 'associated_party_email'",
    "duplicate_column.csv": "duplicate column 's3_uri'",
    "ragged.csv": "a row has 6 fields but the header has 9",
    "unclosed_quote.csv": "a row has 4 fields but the header has 9",
    "latin1.csv": "not valid UTF-8 text (bad bytes in column 's3_uri')",
    "not_a_manifest.csv": "the header is not valid UTF-8",
}


def _no_api_calls(url: str) -> None:
    record = sandbox_record(url)
    assert sum(record["requests"].values()) == 0, record["requests"]
    assert record["uploads"] == [] and record["attachments"] == []


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, catch_exceptions=False)


@pytest.mark.parametrize("name", sorted(WHOLE_FILE_CASES))
def test_whole_file_problem_exits_2_with_one_line_and_no_api_call(name: str, corpus_api_url: str,
                                                                  tmp_path: Path) -> None:
    result = _cli(["run", str(WHOLE_FILE / name), "--report-uri", str(tmp_path / "reports")])

    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kyc-attach: cannot start: ")
    assert WHOLE_FILE_CASES[name] in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "reports").exists()
    _no_api_calls(corpus_api_url)


def test_latin1_message_never_echoes_the_cell(corpus_api_url: str, tmp_path: Path) -> None:
    result = _cli(["run", str(WHOLE_FILE / "latin1.csv"), "--report-uri", str(tmp_path / "r")])
    assert "PXN" not in result.stderr and "Jos" not in result.stderr


def test_ragged_row_message_never_echoes_the_row(corpus_api_url: str, tmp_path: Path) -> None:
    """pyarrow's own message quotes the offending row (document number included): it must not get through."""
    result = _cli(["run", str(WHOLE_FILE / "ragged.csv"), "--report-uri", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "PXN0000103" not in result.stderr and C1 not in result.stderr


def test_real_process_prints_exactly_one_line(corpus_api_url: str, tmp_path: Path) -> None:
    """The console script in its own process: nothing else (no Prefect banner, no traceback) on stderr."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "flows.commands.cli", "run", str(WHOLE_FILE / "header_only.csv"),
         "--report-uri", str(tmp_path / "reports")],
        capture_output=True, text=True, env=env, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == ["kyc-attach: cannot start: manifest: no data rows (only a header)"]
    assert proc.stdout == ""
    _no_api_calls(corpus_api_url)


def test_nested_parquet_column_exits_2(corpus_api_url: str, tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"customer_id": [[C1]], "associated_party_id": [P1], "document_type": ["OTHER"],
                             "s3_uri": ["s3://kyc-docs/a.pdf"]}), path)
    result = _cli(["run", str(path), "--report-uri", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("kyc-attach: cannot start: manifest: Parquet column 'customer_id' has a "
                                     "nested type (list<element: string>); a manifest holds text")
    _no_api_calls(corpus_api_url)


def test_plain_http_to_a_remote_api_refused_before_anything(corpus_api_url: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIN_API_URL", "http://api.fin.example.com")
    result = _cli(["run", str(WHOLE_FILE / "utf8_bom.csv"), "--report-uri", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "plain http is only allowed for a loopback sandbox" in result.stderr
    _no_api_calls(corpus_api_url)


# -- files that are odd but fine: the plan stage reads them and judges row by row ----------------------------


def _plan(path: Path, tmp_path: Path, *, batch_rows: int = 65_536, **rules: Any) -> tuple[Any, list[dict]]:
    manifest = open_manifest(str(path), store=None, cache_dir=tmp_path / "cache")
    plan = plan_manifest(manifest, rules=Rules(today=TODAY, **rules), run_dir=tmp_path / "run",
                         batch_rows=batch_rows, slots=16, shard_rows=1000)
    rejects = pq.read_table(plan.rejects_path).to_pylist()
    return plan, rejects


def _valid_rows(plan: Any) -> list[dict]:
    """Rows the plan passed on without a reason (shards also carry rejected rows, for their documents' sake)."""
    rows = [r for s in plan.shards for r in read_slot_range(s.rows).to_pylist()]
    return [r for r in rows if r["reason_code"] is None]


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    plan, _rejects = _plan(WHOLE_FILE / "utf8_bom.csv", tmp_path)
    assert (plan.rows_in, plan.rows_rejected) == (1, 0)
    assert _valid_rows(plan)[0]["customer_id"] == C1


def test_unknown_extra_columns_are_ignored(tmp_path: Path) -> None:
    plan, _rejects = _plan(WHOLE_FILE / "extra_columns.csv", tmp_path)
    assert (plan.rows_in, plan.rows_rejected) == (1, 0)
    row = _valid_rows(plan)[0]
    assert row["document_number"] == "PXN0000105" and "source_system" not in row


def test_quoted_newline_stays_in_its_row_and_row_numbers_hold(tmp_path: Path) -> None:
    plan, rejects = _plan(WHOLE_FILE / "quoted_newlines.csv", tmp_path)
    assert plan.rows_in == 2
    assert [(r["row_number"], r["reason_code"]) for r in rejects] == [(1, "bad_characters")]
    assert [r["row_number"] for r in _valid_rows(plan)] == [2]


def test_parquet_with_non_text_types_is_judged_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    n = 4
    pq.write_table(pa.table({
        "customer_id": pa.array([C1, C1, "12345", C1]),
        "associated_party_id": pa.array([P1] * n),
        "document_type": pa.array(["PASSPORT"] * n),
        "document_number": pa.array([101, 102, 103, 104], pa.int64()),  # numbers as integers: fine as text
        "country": pa.array(["USA"] * n),
        "issue_date": pa.array([dt.date(2021, 3, 10)] * n, pa.date32()),
        "expiry_date": pa.array([dt.datetime(2035, 3, 10), dt.datetime(2035, 3, 11), dt.datetime(2035, 3, 12),
                                 dt.datetime(2035, 3, 13, 14, 30)], pa.timestamp("ms")),
        "s3_uri": pa.array([f"s3://kyc-docs/p{i}.pdf" for i in range(n)]),
    }), path)
    plan, rejects = _plan(path, tmp_path)
    assert plan.rows_in == n
    assert {r["row_number"]: r["reason_code"] for r in rejects} == {3: "bad_uuid", 4: "bad_date"}
    valid = sorted(_valid_rows(plan), key=lambda r: r["row_number"])
    assert [(r["document_number"], r["issue_date"], r["expiry_date"]) for r in valid] == [
        ("101", "2021-03-10", "2035-03-10"), ("102", "2021-03-10", "2035-03-11")]


def test_one_megabyte_cell_is_a_row_rejection_not_a_file_failure(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    header = "customer_id,associated_party_id,document_type,document_number,country,issue_date,expiry_date,s3_uri\n"
    good = f"{C1},{P1},PASSPORT,PXN1,USA,2021-03-10,2035-03-10,s3://kyc-docs/a.pdf\n"
    long = f"{C1},{P1},PASSPORT,{'9' * (1 << 20)},USA,2021-03-10,2035-03-10,s3://kyc-docs/b.pdf\n"
    path.write_text(header + good + long + good.replace("a.pdf", "c.pdf"))
    plan, rejects = _plan(path, tmp_path, batch_rows=10)  # small batches: the row still fits its block
    assert plan.rows_in == 3
    assert [(r["row_number"], r["reason_code"]) for r in rejects] == [(2, "cell_too_long")]
    assert rejects[0]["message"] == "document_number: longer than 4096 characters"


def test_million_rows_every_other_bad(tmp_path: Path) -> None:
    """Counts in equal counts out at scale; a bad row never takes its neighbours down."""
    n = 1_000_000
    import numpy as np

    i = np.arange(n)
    good = i % 2 == 0
    cust = np.char.add("0f8e3c52-6d1a-4b7e-9a21-", np.char.zfill((i // 4).astype(str), 12))
    path = tmp_path / "million.parquet"
    pq.write_table(pa.table({
        "customer_id": pa.array(cust),
        "associated_party_id": pa.array(np.where(good, P1, "not-a-uuid")),
        "document_type": pa.array(np.full(n, "UTILITY_BILL")),
        "s3_uri": pa.array(np.char.add("s3://kyc-docs/bills/", i.astype(str))),
    }), path)
    started = time.monotonic()
    plan, _ = _plan(path, tmp_path, batch_rows=65_536)
    elapsed = time.monotonic() - started
    assert plan.rows_in == n
    assert plan.rows_rejected == n // 2
    shard_rows = pa.concat_tables([read_slot_range(s.rows, columns=["reason_code"]) for s in plan.shards])
    valid = shard_rows.column("reason_code").null_count
    rejected = pq.ParquetFile(plan.rejects_path).metadata.num_rows
    assert valid + rejected == n and valid == n // 2
    codes = pq.read_table(plan.rejects_path, columns=["reason_code", "row_number"])
    assert set(codes.column("reason_code").to_pylist()) == {"bad_uuid"}
    assert codes.column("row_number").to_numpy().min() == 2  # every even row number (1-based), none other
    assert (codes.column("row_number").to_numpy() % 2 == 0).all()
    assert elapsed < 30, f"plan took {elapsed:.1f}s"


def test_header_only_inside_the_flow_is_a_setup_error_too(tmp_path: Path) -> None:
    """Deployments call the flow without the CLI: the plan stage itself refuses an empty manifest."""
    with pytest.raises(SetupError, match="no data rows"):
        _plan(WHOLE_FILE / "header_only.csv", tmp_path)


def test_refused_credentials_exit_2_before_any_upload_or_attach(corpus_api_url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIN_CLIENT_SECRET", "not-the-secret")
    manifest = tmp_path / "one.csv"
    manifest.write_text("customer_id,associated_party_id,document_type,s3_uri\n"
                        f"{C1},{P1},UTILITY_BILL,s3://docs-bucket/bill.pdf\n")

    result = _cli(["run", str(manifest), "--report-uri", str(tmp_path / "reports")])

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["kyc-attach: cannot start: token: the API refused the client credentials "
                                          "(HTTP 401)"]
    assert "not-the-secret" not in result.output
    record = sandbox_record(corpus_api_url)
    assert set(record["requests"]) <= {"token"}, record["requests"]
    assert not (tmp_path / "reports").exists()


def test_a_full_disk_while_planning_is_a_setup_error_naming_the_remedy(tmp_path: Path) -> None:
    """/dev/full answers every write with ENOSPC, as a full disk does: the rows file is pointed at it."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    path = tmp_path / "m.csv"
    path.write_text("customer_id,associated_party_id,document_type,s3_uri\n"
                    + "\n".join(f"{uuid.UUID(int=i)},{uuid.UUID(int=i)},UTILITY_BILL,s3://b/k{i}.pdf"
                                for i in range(1, 2000)))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "rows.arrow").symlink_to("/dev/full")
    manifest = open_manifest(str(path), store=None, cache_dir=tmp_path)
    with pytest.raises(SetupError, match=r"disk filled up.*KYC_ATTACH_WORK_DIR") as info:
        plan_manifest(manifest, rules=Rules(today=TODAY), run_dir=run_dir, batch_rows=500, slots=8,
                      shard_rows=100)
    assert "s3://" not in str(info.value)
