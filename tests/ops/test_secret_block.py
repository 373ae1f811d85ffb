"""The Fin client secret kept in a Prefect Secret block, on a real Prefect server: a fanned-out run's shard runs on
two process workers authenticate with the block the parent names, the secret nowhere in their environment; a block
that cannot be read stops ``kyc-attach run`` at start-up with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.blocks.system import Secret

from bench.support.fanout_world import FanOutWorld
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET
from tests.ops.fanout_helpers import fan_out_env
from tests.support.scenario import DemoScenario

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BLOCK = "fin-client-secret"


def _save_secret_block(world: FanOutWorld, name: str, value: str) -> None:
    world.api(lambda client: Secret(value=value).asave(name, overwrite=True, client=client))


def test_fanned_out_shard_runs_authenticate_with_the_parents_secret_block(
    two_workers: FanOutWorld, demo_scenario: Callable[..., DemoScenario], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _save_secret_block(two_workers, BLOCK, CLIENT_SECRET)
    scenario = demo_scenario(customers=8)
    fan_out_env(monkeypatch, scenario.sandbox_url, tmp_path, scenario.bucket, KYC_ATTACH_SHARD_ROWS="18",
                KYC_ATTACH_FIN_CLIENT_SECRET_BLOCK=BLOCK)
    monkeypatch.delenv("FIN_CLIENT_SECRET")
    # The workers' own FIN_CLIENT_SECRET emptied for these shard runs: only the block can authenticate them.
    with two_workers.shard_env(FIN_CLIENT_SECRET=""):
        summary = two_workers.run(scenario.manifest, f"s3://{scenario.bucket}/reports")

    assert summary["shards"] >= 2
    assert summary["by_status"].get("failed", 0) == 0
    assert summary["by_status"]["attached"] > 0
    runs = two_workers.shard_runs(summary["run_id"])
    assert len(runs) == summary["shards"]
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    # the block's name reached each shard run; its value is in no flow run's parameters or job variables
    assert all(r.job_variables == {"env": {"KYC_ATTACH_FIN_CLIENT_SECRET_BLOCK": BLOCK}} for r in runs)
    assert all(CLIENT_SECRET not in str(r.parameters) for r in runs)
    assert scenario.record()["duplicates"] == {"uploads": 0, "attachments": 0}


def test_a_secret_block_that_cannot_be_read_stops_the_run_at_start_up_naming_it(
    two_workers: FanOutWorld, demo_scenario: Callable[..., DemoScenario], tmp_path: Path,
) -> None:
    scenario = demo_scenario(customers=2)
    env = two_workers.server.env(FIN_API_URL=scenario.sandbox_url, FIN_CLIENT_ID=CLIENT_ID,
                                 KYC_ATTACH_FIN_CLIENT_SECRET_BLOCK="no-such-block",
                                 KYC_ATTACH_WORK_DIR=str(tmp_path / "work"))
    env.pop("FIN_CLIENT_SECRET", None)
    done = subprocess.run([sys.executable, "-m", "flows.commands.cli", "run", scenario.manifest, "--report-uri",
                           f"s3://{scenario.bucket}/reports", "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Secret block 'no-such-block' could not be read" in lines[0]
    assert scenario.record()["uploads"] == []
