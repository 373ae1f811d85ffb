"""AWS credentials per role from prefect-aws ``AwsCredentials`` blocks on a real Prefect server: the S3 server,
seen through a recording proxy, gets the document reads signed with the documents block's key, the manifest
read with the manifest block's and the report and ledger writes with the report block's; a block name that
names no block stops ``kyc-attach run`` before planning with one line naming the setting and the block."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prefect.settings import get_current_settings
from prefect_aws import AwsCredentials

from tests.support.scenario import DemoScenario
from tests.support.signing_proxy import SigningRecord, signing_proxy

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def proxied_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SigningRecord]:
    """boto3 pointed at a recording proxy in front of the S3 server (for clients made inside the block)."""
    with signing_proxy(s3_endpoint) as record:
        monkeypatch.setenv("AWS_ENDPOINT_URL", record.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", record.url)
        yield record


def _save_block(access_key: str) -> str:
    name = f"aws-{access_key.lower()}-{uuid.uuid4().hex[:8]}"
    AwsCredentials(aws_access_key_id=access_key, aws_secret_access_key="not-checked-by-moto",  # type: ignore[arg-type]
                   region_name="us-east-1").save(name, overwrite=True)
    return name


def test_each_role_signs_its_s3_requests_with_its_own_block(
    prefect_harness: None, s3_endpoint: str, demo_scenario: Callable[..., DemoScenario],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocks = {role: _save_block(f"AKID{role.upper()}") for role in ("documents", "manifest", "report")}
    scenario = demo_scenario(customers=3)  # staged with the default chain
    bucket = scenario.bucket
    monkeypatch.setenv("KYC_ATTACH_LEDGER_URI", f"s3://{bucket}/ledger")
    for role, name in blocks.items():
        monkeypatch.setenv(f"KYC_ATTACH_AWS_CREDENTIALS_BLOCK_{role.upper()}", name)
    document_keys = {row["s3_uri"].removeprefix(f"s3://{bucket}/") for row in scenario.rows}

    with proxied_s3(s3_endpoint, monkeypatch) as record:
        summary = scenario.run()

    assert summary["by_status"]["attached"] > 0
    document_reads = {r.access_key for r in record.requests
                      if r.method in ("GET", "HEAD") and r.path.removeprefix(f"/{bucket}/") in document_keys}
    assert document_reads == {"AKIDDOCUMENTS"}
    assert record.keys_for("HEAD", f"/{bucket}/manifests/") | record.keys_for("GET", f"/{bucket}/manifests/") \
        == {"AKIDMANIFEST"}
    assert record.keys_for("PUT", f"/{bucket}/reports/") == {"AKIDREPORT"}
    assert record.keys_for("PUT", f"/{bucket}/ledger/") == {"AKIDREPORT"}
    assert "local" not in {r.access_key for r in record.requests}  # nothing fell back to the default chain


def test_a_credentials_block_that_is_not_there_stops_the_run_before_planning_naming_the_setting(
    prefect_harness: None, demo_scenario: Callable[..., DemoScenario], tmp_path: Path,
) -> None:
    scenario = demo_scenario(customers=2)
    env = dict(os.environ)
    env.update(PREFECT_API_URL=str(get_current_settings().api.url),
               KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS="no-such-aws-block",
               KYC_ATTACH_WORK_DIR=str(tmp_path / "work"))
    done = subprocess.run([sys.executable, "-m", "flows.commands.cli", "run", scenario.manifest, "--report-uri",
                           f"s3://{scenario.bucket}/reports", "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].count("KYC_ATTACH_AWS_CREDENTIALS_BLOCK_DOCUMENTS") == 1
    assert "AwsCredentials block 'no-such-aws-block' could not be read" in lines[0]
    assert scenario.record()["uploads"] == []
