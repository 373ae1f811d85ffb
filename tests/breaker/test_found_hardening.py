"""Breaker: hardening (#16) problems found with the CLI against the loopback S3 server and Fin sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.cli import app
from flows.commands.demo import demo_rows, demo_world
from tests.support.scenario import api_env, load_world, put_scenario

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, catch_exceptions=False)


@pytest.fixture()
def staged(fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    world = demo_world(customers=2)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    return put_scenario(bucket, rows, files)


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
