"""`kyc-attach demo` (the README's first command) works again and again from the same folder: each demo's sandbox,
S3 server and ledger live only as long as it does, so a second demo is not refused as another tenant's run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _demo(folder: Path) -> dict[str, object]:
    """One demo as a person runs it: its own process (its own S3 server), from ``folder``."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIN_", "KYC_ATTACH_", "AWS_"))}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())  # this session's server: no temporary one to start
    done = subprocess.run([sys.executable, "-m", "flows.commands.cli", "demo"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    summary: dict[str, object] = json.loads(done.stdout[done.stdout.index("{"):])
    return summary


def test_the_demo_runs_twice_from_one_folder(tmp_path: Path) -> None:
    first, second = _demo(tmp_path), _demo(tmp_path)

    for summary in (first, second):
        by_status = summary["by_status"]
        assert isinstance(by_status, dict) and by_status["attached"] > 0 and by_status["failed"] == 0
        assert Path(str(summary["report_page"])).is_file()
    assert first["by_status"] == second["by_status"]  # a new world each time: the same outcome, nothing skipped
