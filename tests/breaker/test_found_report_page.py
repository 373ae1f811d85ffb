"""Breaker: the report page (#15) for odd runs, against the loopback S3 server, the sandbox and Prefect."""

from __future__ import annotations

import html
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.cli import app
from tests.support.scenario import api_env, load_world
from tests.support.legacy_archives import stage_archive

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_retry_command_on_the_page_of_a_mapped_run_works(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """README: report.html gives 'the exact command to retry failed rows'. For a legacy archive run with
    `--mapping` (carrier_c: cp1252, ';'), the page's command leaves `--mapping` out (summary.json does not even
    record the mapping), so the person who copies it gets exit 2 ('the header reads as one field holding
    ;-separated names') instead of a retry."""
    archive, mapping, world, _ = stage_archive("carrier_c", bucket)
    load_world(fin_sandbox.url, world, {"errors": {"share": 1.0, "statuses": [503], "endpoints": ["upload"]}})
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_MAX_ATTEMPTS="1")
    reports = f"s3://{bucket}/reports"
    first = CliRunner().invoke(app, ["run", archive, "--report-uri", reports, "--mapping", mapping,
                                     "--run-id", "m1", "--no-progress"])
    assert first.exit_code == 1, first.output
    page = ObjectStore(S3Store(make_s3_client())).read(Location(bucket, "reports/m1/report.html")).decode()
    commands = [html.unescape(c) for c in re.findall(r"kyc-attach run [^<]*--retry-failed m1", page)]
    assert commands, "no retry command on the page"
    load_world(fin_sandbox.url, world)  # the outage is over
    args = [*shlex.split(commands[0])[1:], "--no-progress"]
    retry = CliRunner().invoke(app, args)
    assert retry.exit_code != 2, f"the page's retry command does not start: {retry.stderr.strip()}"
