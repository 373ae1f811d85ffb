"""The start-up gate: hostile run ids, malformed settings, URL credentials, a report location that cannot take the
report, a run id already used: each is exit 2 with one line on stderr, before anything is uploaded or attached.

Against the real loopback S3 server and Fin sandbox; the CLI in-process (``CliRunner``) unless a real process is
what is being tested (signals).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.cli import app
from tests.hostile.helpers import WHOLE_FILE
from tests.support.scenario import sandbox_record

GOOD_MANIFEST = WHOLE_FILE / "utf8_bom.csv"  # well-formed: passes every whole-file check
ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _nothing_sent(url: str) -> None:
    """No upload and no attach reached the sandbox (a token request may have: it sends nothing of the run)."""
    record = sandbox_record(url)
    assert set(record["requests"]) <= {"token"}, record["requests"]
    assert record["uploads"] == [] and record["attachments"] == []


def _one_line(result: Any) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    line: str = lines[0]
    return line


# -- run ids ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["../../x", "../canary", "/abs", ".", "..", "a/b", ".hidden", "x" * 101, ""])
def test_hostile_run_id_is_refused_and_nothing_outside_the_work_folder_is_touched(
        run_id: str, corpus_api_url: str, tmp_path: Path) -> None:
    work = tmp_path / "work"  # KYC_ATTACH_WORK_DIR of the run (corpus_api_url)
    canary = tmp_path / "canary"  # what "../canary" and "../../x" would reach from the runs folder
    canary.mkdir()
    (canary / "keep.txt").write_text("mine")
    (work / "runs" / "other-run").mkdir(parents=True)
    (work / "runs" / "other-run" / "rows.arrow").write_text("another run's rows")

    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", str(tmp_path / "reports"), "--run-id", run_id])

    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert line.startswith("kyc-attach: cannot start: --run-id: the value ")
    assert (canary / "keep.txt").read_text() == "mine"
    assert (work / "runs" / "other-run" / "rows.arrow").exists()
    assert not (tmp_path / "reports").exists()
    _nothing_sent(corpus_api_url)


def test_hostile_retry_failed_run_id_is_refused(corpus_api_url: str, tmp_path: Path) -> None:
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", str(tmp_path / "reports"), "--retry-failed", "../x"])
    assert result.exit_code == 2
    assert _one_line(result).startswith("kyc-attach: cannot start: --retry-failed: the value ")


@pytest.mark.slow
@pytest.mark.parametrize("run_id", ["..", "../canary", "/tmp"])
def test_the_flow_itself_refuses_a_hostile_run_id(run_id: str, prefect_harness: None, corpus_api_url: str,
                                                  tmp_path: Path) -> None:
    """A deployment run does not pass through the CLI: the flow checks the parameter before any clean-up."""
    from flows.attach_flow import run_attach

    (tmp_path / "canary").mkdir()
    (tmp_path / "canary" / "keep.txt").write_text("mine")
    (tmp_path / "work" / "runs").mkdir(parents=True)
    with pytest.raises(SetupError, match="run id: the value"):
        asyncio.run(run_attach(str(GOOD_MANIFEST), str(tmp_path / "reports"), run_id=run_id))
    assert (tmp_path / "canary" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "work" / "runs").is_dir()
    _nothing_sent(corpus_api_url)


def test_shard_run_parameters_refuse_a_path_as_run_id_or_shard() -> None:
    from pydantic import ValidationError

    from flows.fanout import ShardJob

    good = {"run_id": "r1", "shard": "b0000-0010", "rows_uri": "s3://w/r", "work_prefix": "s3://w/r1",
            "part_uri": "s3://w/p", "ledger_root": "s3://w/l", "run_date": "2026-01-10",
            "rate_share": {"tag": "kyc-attach-rate:fin", "total_rps": 10}}
    ShardJob.model_validate(good)
    for field, value in (("run_id", "../.."), ("run_id", "/"), ("shard", "../../x"), ("shard", ".")):
        with pytest.raises(ValidationError):
            ShardJob.model_validate({**good, field: value})


# -- settings and the API URL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("KYC_ATTACH_MAX_FILE_BYTES", "100k", "setting KYC_ATTACH_MAX_FILE_BYTES: Input should be a valid integer"),
    ("KYC_ATTACH_ALLOWED_BUCKETS", "notjson", "setting KYC_ATTACH_ALLOWED_BUCKETS: the value is not valid JSON"),
    ("KYC_ATTACH_S3_SSE", "", "setting KYC_ATTACH_S3_SSE: Input should be 'AES256' or 'aws:kms'"),
    ("KYC_ATTACH_S3_SSE", "AES-256", "setting KYC_ATTACH_S3_SSE: Input should be 'AES256' or 'aws:kms'"),
    ("KYC_ATTACH_FAIL_RATIO", "1.5secret", "setting KYC_ATTACH_FAIL_RATIO: Input should be a valid number"),
])
def test_malformed_setting_is_one_line_naming_it_without_its_value(
        name: str, value: str, expected: str, corpus_api_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", str(tmp_path / "reports")])
    assert result.exit_code == 2
    line = _one_line(result)
    assert line.startswith(f"kyc-attach: cannot start: {expected}")
    if value:
        assert value not in line
    _nothing_sent(corpus_api_url)


@pytest.mark.parametrize("dry_run", [False, True])
def test_credentials_in_the_api_url_are_refused_and_never_echoed(dry_run: bool, corpus_api_url: str,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    host = corpus_api_url.split("://", 1)[1]
    monkeypatch.setenv("FIN_API_URL", f"http://ops:hunter2-pw@{host}")
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", str(tmp_path / "reports"),
                   *(["--dry-run"] if dry_run else [])])
    assert result.exit_code == 2
    assert _one_line(result) == ("kyc-attach: cannot start: api_url: the URL holds a user name or password; give "
                                 "credentials as FIN_CLIENT_ID and FIN_CLIENT_SECRET")
    assert "hunter2" not in result.output
    assert not (tmp_path / "reports").exists()
    _nothing_sent(corpus_api_url)


@pytest.mark.parametrize("missing", ["FIN_CLIENT_SECRET", "FIN_CLIENT_ID"])
def test_a_missing_credential_is_named_before_the_manifest_is_read(missing: str, corpus_api_url: str,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(missing, "")
    result = _cli(["run", str(tmp_path / "no-such-manifest.csv"), "--report-uri", str(tmp_path / "reports")])
    assert result.exit_code == 2
    assert _one_line(result) == f"kyc-attach: cannot start: {missing} is not set"
    _nothing_sent(corpus_api_url)
    assert sandbox_record(corpus_api_url)["requests"].get("token", 0) == 0


def test_a_deployment_run_without_a_secret_names_it_before_planning(prefect_harness: None, corpus_api_url: str,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow run started from a deployment has no start-up gate: the flow says what is missing itself."""
    from flows.attach_flow import run_attach

    monkeypatch.delenv("FIN_CLIENT_SECRET", raising=False)
    with pytest.raises(SetupError, match=r"^FIN_CLIENT_SECRET is not set$"):
        asyncio.run(run_attach(str(tmp_path / "no-such-manifest.csv"), str(tmp_path / "reports"), run_id="r1"))
    _nothing_sent(corpus_api_url)
    assert not (tmp_path / "reports").exists()  # refused before the claim: the run id stays free


# -- the report location and the run id's claim ----------------------------------------------------------------


def test_missing_report_bucket_is_refused_before_anything_is_sent(corpus_api_url: str, tmp_path: Path,
                                                                  s3_endpoint: str) -> None:
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", "s3://no-such-bucket-kyc/reports", "--run-id", "r1"])
    assert result.exit_code == 2
    assert _one_line(result) == ("kyc-attach: cannot start: report location s3://no-such-bucket-kyc/reports: "
                                 "cannot be read (NoSuchBucket)")
    _nothing_sent(corpus_api_url)


class _RefusesPut:
    """A boto3 client whose bucket policy denies PutObject (moto does not enforce policies): AWS's answer."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def put_object(self, **kw: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")


def test_bucket_refusing_put_object_is_refused_before_anything_is_sent(
        corpus_api_url: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.start_gate as start_gate

    monkeypatch.setattr(start_gate, "make_store",
                        lambda settings, s3=True: ObjectStore(S3Store(_RefusesPut(make_s3_client()))))
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", f"s3://{bucket}/reports", "--run-id", "r1"])
    assert result.exit_code == 2
    assert _one_line(result) == (f"kyc-attach: cannot start: report location s3://{bucket}/reports/r1: cannot be "
                                 "written (AccessDenied)")
    _nothing_sent(corpus_api_url)


@pytest.mark.parametrize("where", ["report_root", "run_folder"])
def test_a_file_where_the_report_folder_should_be_is_refused(where: str, corpus_api_url: str,
                                                             tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    if where == "report_root":
        reports.write_text("not a folder")
    else:
        reports.mkdir()
        (reports / "r1").write_text("not a folder")
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", str(reports), "--run-id", "r1"])
    assert result.exit_code == 2
    assert _one_line(result).startswith(f"kyc-attach: cannot start: report location {reports}/r1: cannot be "
                                        "written (")
    _nothing_sent(corpus_api_url)


def test_half_published_earlier_run_is_refused_before_anything_is_sent(corpus_api_url: str, bucket: str) -> None:
    """A run killed while publishing left rows.parquet without summary.json: the run id is not free."""
    client = make_s3_client()
    client.put_object(Bucket=bucket, Key="reports/r1/rows.parquet", Body=b"PAR1")
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", f"s3://{bucket}/reports", "--run-id", "r1"])
    assert result.exit_code == 2
    assert _one_line(result) == ("kyc-attach: cannot start: run id r1: an earlier run left files under the report "
                                 "location without a summary.json (stopped while publishing?); choose another run id")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["reports/r1/rows.parquet"]
    _nothing_sent(corpus_api_url)


def test_a_claimed_run_id_is_refused(corpus_api_url: str, bucket: str) -> None:
    client = make_s3_client()
    client.put_object(Bucket=bucket, Key="reports/r1/_run.json",
                      Body=json.dumps({"run_id": "r1", "claim": "someone-else", "started_at": "2026-11-29T10:00:00"}))
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", f"s3://{bucket}/reports", "--run-id", "r1"])
    assert result.exit_code == 2
    assert _one_line(result) == ("kyc-attach: cannot start: run id r1: another run claimed it (started "
                                 "2026-11-29T10:00:00); choose another run id")
    _nothing_sent(corpus_api_url)


@pytest.mark.slow
def test_the_flow_itself_refuses_a_half_published_run_id(prefect_harness: None, corpus_api_url: str,
                                                         bucket: str) -> None:
    """A deployment run, not through the CLI, claims too: refused before the plan, nothing sent."""
    from flows.attach_flow import run_attach

    make_s3_client().put_object(Bucket=bucket, Key="reports/r1/rows.parquet", Body=b"PAR1")
    with pytest.raises(SetupError, match="an earlier run left files"):
        asyncio.run(run_attach(str(GOOD_MANIFEST), f"s3://{bucket}/reports", run_id="r1"))
    _nothing_sent(corpus_api_url)


@pytest.mark.slow
def test_the_cli_claims_once_and_the_flow_accepts_its_claim(prefect_harness: None, corpus_api_url: str,
                                                            bucket: str) -> None:
    """The marker: encrypted, the run id and a start time, nothing of the manifest; the run then completes."""
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", f"s3://{bucket}/reports", "--run-id", "claimed",
                   "--dry-run", "--no-progress"])
    assert result.exit_code in (0, 1), result.output
    client = make_s3_client()
    marker = client.get_object(Bucket=bucket, Key="reports/claimed/_run.json")
    assert marker["ServerSideEncryption"] == "AES256"
    claim = json.loads(marker["Body"].read())
    assert set(claim) == {"run_id", "claim", "started_at"} and claim["run_id"] == "claimed"
    assert client.head_object(Bucket=bucket, Key="reports/claimed/summary.json")

    again = _cli(["run", str(GOOD_MANIFEST), "--report-uri", f"s3://{bucket}/reports", "--run-id", "claimed"])
    assert again.exit_code == 2
    assert "a report exists already" in _one_line(again)


def test_retry_failed_naming_a_run_without_a_report_is_one_line(corpus_api_url: str, bucket: str) -> None:
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", f"s3://{bucket}/reports", "--retry-failed", "nope"])
    assert result.exit_code == 2
    assert _one_line(result) == (f"kyc-attach: cannot start: --retry-failed: no report of that run under "
                                 f"s3://{bucket}/reports/nope")
    _nothing_sent(corpus_api_url)


# -- errors nobody planned for ---------------------------------------------------------------------------------


def test_an_unexpected_error_at_start_up_is_one_line_exit_2_and_debug_shows_the_traceback(
        corpus_api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.start_gate as start_gate

    def broken(*args: Any, **kw: Any) -> int:
        raise LookupError("no such thing\nsecond line")

    monkeypatch.setattr(start_gate, "count_rows", broken)
    args = ["run", str(GOOD_MANIFEST), "--report-uri", str(tmp_path / "reports")]
    result = _cli(args)
    assert result.exit_code == 2
    assert _one_line(result) == "kyc-attach: error: LookupError: no such thing"

    debug = _cli([*args, "--debug"])
    assert debug.exit_code == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == "kyc-attach: error: LookupError: no such thing"
    _nothing_sent(corpus_api_url)


@pytest.mark.slow
def test_an_unexpected_error_after_the_run_started_is_one_line_exit_3(
        prefect_harness: None, corpus_api_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.attach_flow as attach_flow

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("the plan broke")

    monkeypatch.setattr(attach_flow, "plan_manifest", broken)
    result = _cli(["run", str(GOOD_MANIFEST), "--report-uri", str(tmp_path / "reports"), "--no-progress"])
    assert result.exit_code == 3
    # met inside the flow: its type and the project's line only, as the flow run's state says (the text of an
    # error from another library may quote a key or a URL)
    line = result.stderr.splitlines()[-1]
    assert line.startswith("kyc-attach: error: Unforeseen: unexpected RuntimeError at attach_flow.py:"), line
    assert "the plan broke" not in line
    # --debug: the traceback of the error as it happened, for the person at the terminal
    debug = _cli(["run", str(GOOD_MANIFEST), "--report-uri", str(tmp_path / "reports"), "--no-progress", "--debug"])
    assert debug.exit_code == 3 and "RuntimeError: the plan broke" in debug.stderr


# -- the local copy of an S3 manifest --------------------------------------------------------------------------


def _put_manifest(bucket: str, body: bytes) -> str:
    make_s3_client().put_object(Bucket=bucket, Key="in/m.csv", Body=body)
    return f"s3://{bucket}/in/m.csv"


def _local_files(work: Path) -> list[Path]:
    return [p for p in work.rglob("*") if p.is_file()] if work.exists() else []


def test_the_manifest_copy_is_removed_when_start_up_fails_after_the_download(corpus_api_url: str, bucket: str,
                                                                             tmp_path: Path) -> None:
    manifest = _put_manifest(bucket, (WHOLE_FILE / "missing_column.csv").read_bytes())
    result = _cli(["run", manifest, "--report-uri", f"s3://{bucket}/reports"])
    assert result.exit_code == 2
    assert "missing required column" in _one_line(result)
    assert (tmp_path / "work" / "startup").is_dir(), "the start-up folder was never made: nothing proved"
    assert _local_files(tmp_path / "work") == []


def test_start_up_folders_of_killed_processes_are_swept_at_the_next_start(corpus_api_url: str, bucket: str,
                                                                          tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / "work" / "startup" / dead.stdout.strip() / "manifests"
    orphan.mkdir(parents=True)
    (orphan / "etag-m.csv").write_text("a killed run's copy")
    manifest = _put_manifest(bucket, (WHOLE_FILE / "missing_column.csv").read_bytes())
    _cli(["run", manifest, "--report-uri", f"s3://{bucket}/reports"])
    assert _local_files(tmp_path / "work") == []


@pytest.mark.slow
def test_sigterm_during_start_up_removes_the_manifest_copy(corpus_api_url: str, bucket: str, tmp_path: Path) -> None:
    """The process is stopped while it waits on the token request (an API that accepts and never answers), with
    the manifest copied down and read: the copy goes with it."""
    manifest = _put_manifest(bucket, GOOD_MANIFEST.read_bytes())
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    work = tmp_path / "work-sigterm"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "KYC_ATTACH_WORK_DIR": str(work),
           "FIN_API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}"}
    proc = subprocess.Popen([sys.executable, "-m", "flows.commands.cli", "run", manifest, "--report-uri",
                             f"s3://{bucket}/reports"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        silent.settimeout(60)
        conn, _ = silent.accept()  # the token request: the manifest was copied and read before it
        copies = [p for p in _local_files(work) if p.parent.name == "manifests"]
        assert copies, "no copy of the manifest on disk when the token was asked for: nothing proved"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 5))
        conn.close()
    finally:
        proc.kill()
        silent.close()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert _local_files(work) == []
    assert make_s3_client().list_objects_v2(Bucket=bucket, Prefix="reports/").get("KeyCount") == 0


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_bad_include_rejected_does_not_burn_the_run_id(staged: str, bucket: str) -> None:
    """README: bad arguments are exit 2 from the start-up gate, before Prefect starts, one line; a refused start
    leaves nothing behind and its run id can be used again. Found: `--include-rejected` is checked inside the
    flow after the claim, so `_run.json` is written and the corrected command is refused."""
    reports = f"s3://{bucket}/reports"
    first = _cli(["run", staged, "--report-uri", reports, "--run-id", "r1", "--no-progress", "--dry-run"])
    assert first.exit_code == 0, first.stderr
    bad = _cli(["run", staged, "--report-uri", reports, "--run-id", "r2", "--no-progress",
                "--retry-failed", "r1", "--include-rejected", "misssing_object"])
    assert bad.exit_code == 2
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr[-3000:]
    store = ObjectStore(S3Store(make_s3_client()))
    assert not store.exists(Location(bucket, "reports/r2/_run.json")), "the refused start claimed run id r2"
    fixed = _cli(["run", staged, "--report-uri", reports, "--run-id", "r2", "--no-progress", "--dry-run",
                  "--retry-failed", "r1", "--include-rejected", "missing_object"])
    assert fixed.exit_code in (0, 1), fixed.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("report_uri", ["s3:/{bucket}/reports", "S3://{bucket}/reports", ""])
def test_report_uri_typo_is_not_silently_a_local_folder(
        staged: str, bucket: str, report_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-character typo of an S3 report location (`s3:/b/x`, `S3://b/x`) or an empty `--report-uri` is taken
    as a local relative path: the report (customer ids, S3 keys) and, for a real run, the ledger go to
    `./s3:/b/x/` or straight into the current directory, and the next run with the right spelling has another
    ledger, so it attaches everything again. Expected: exit 2, one line, nothing written in the cwd."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = _cli(["run", staged, "--report-uri", report_uri.format(bucket=bucket), "--run-id", "t1",
                   "--no-progress", "--dry-run"])
    written = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
    assert result.exit_code == 2 and written == [], (result.exit_code, written[:8])


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("typo", ["KYC_ATTACH_ALLOWED_BUCKET", "KYC_ATTACH_ALLOWEDBUCKETS", "KYC_ATTACH_S3SSE"])
def test_misspelt_setting_is_refused_not_silently_ignored(
        staged: str, bucket: str, typo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are `extra="ignore"`: `KYC_ATTACH_ALLOWED_BUCKET='["other-bucket"]'` (one letter short) runs with no
    bucket allow-list at all, every document from any bucket accepted, exit 0 and no word said; the same for a
    misspelt `KYC_ATTACH_S3_SSE=aws:kms` (runs with AES256). README lists typos of values as exit 2 ('a setting
    that does not parse'); a typo of the name of a security control should not be quieter than a typo of its
    value: an unknown `KYC_ATTACH_*` variable should stop the start (exit 2, one line naming it)."""
    monkeypatch.setenv(typo, '["other-bucket"]' if "BUCKET" in typo else "aws:kms")
    result = _cli(["run", staged, "--report-uri", f"s3://{bucket}/reports", "--run-id", "t1", "--no-progress",
                   "--dry-run"])
    assert result.exit_code == 2, "the misspelt setting was ignored and the run went ahead"
    assert typo in result.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_fan_out_without_its_deployment_is_refused_before_the_claim_in_one_line(
        staged: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """operations.md: a CLI run with `KYC_ATTACH_SHARD_DEPLOYMENT` but no such deployment on the Prefect server
    'stops at once with "no deployment ..."'. Found: the check runs inside the flow, after the run id was claimed:
    Prefect prints a 16-line traceback on stderr before the line, and `<run>/_run.json` stays, so the same command
    with the setting fixed is refused 'another run claimed it'. README: exit 2 is one line and a refused start
    leaves nothing behind."""
    monkeypatch.setenv("KYC_ATTACH_SHARD_DEPLOYMENT", "attach-shard/attach-shard")
    monkeypatch.setenv("KYC_ATTACH_WORK_URI", f"s3://{bucket}/work")
    result = _cli(["run", staged, "--report-uri", f"s3://{bucket}/reports", "--run-id", "f1", "--no-progress"])
    assert result.exit_code == 2
    store = ObjectStore(S3Store(make_s3_client()))
    assert not store.exists(Location(bucket, "reports/f1/_run.json")), "the refused start claimed run id f1"
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-1500:]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("tail", ["/?client_secret=s3cr3t-value", "#user:s3cr3t-value@x"])
def test_credentials_in_the_api_url_query_or_fragment_never_reach_the_report(
        staged: str, bucket: str, tail: str, fin_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate refuses `user:pass@` in FIN_API_URL, and summary.json strips user info 'as a second line of
    defence'. A secret in the query string (`?client_secret=...`, how some gateways take keys) or a `user:pass@`
    after a `#` passes the gate (a base URL has neither), and is written verbatim to summary.json and report.html
    (the settings table), which the README says never hold secrets."""
    monkeypatch.setenv("FIN_API_URL", fin_sandbox.url + tail)
    result = _cli(["run", staged, "--report-uri", f"s3://{bucket}/reports", "--run-id", "u1", "--no-progress",
                   "--dry-run"])
    if result.exit_code == 2:
        return  # refused at the gate: fine
    store = ObjectStore(S3Store(make_s3_client()))
    for name in ("summary.json", "report.html"):
        body = store.read(Location(bucket, f"reports/u1/{name}")).decode()
        assert "s3cr3t-value" not in body, f"the secret in FIN_API_URL is in {name}"
