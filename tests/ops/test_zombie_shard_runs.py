"""A fanned-out shard run whose worker dies gives its share of the API rate back, on a real Prefect server: flow runs
send heartbeats, the automation of deployments/zombie-automation.yaml marks the run whose heartbeats stopped
Crashed, and the RUNNING count the shard runs share the rate by (connectors.rate_share) drops to the survivors.

Its own server and workers: the test kills one of them. Heartbeats every 30 s (Prefect's least) and the
automation's window shortened to 50 s keep it to a few minutes; the heartbeat frequency comes from the shard
deployment of deployments/prefect.yaml, not from the workers' environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType

from bench.support.fanout_world import LIMIT, POOL, SHARD_DEPLOYMENT
from bench.support.prefect_server import PrefectServer, prefect_server
from connectors.rate_share import rate_tag, sending_tag
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_rows, demo_world
from tests.support.scenario import load_world, put_scenario

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
WITHIN_S = 50
RUN_ID = "zombie-1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrefectServer]:
    with prefect_server(tmp_path) as running:
        running.cli("work-pool", "create", POOL, "--type", "process")
        running.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
        automation = yaml.safe_load((ROOT / "deployments" / "zombie-automation.yaml").read_text())
        automation["trigger"]["within"] = WITHIN_S
        short = tmp_path / "zombie-automation.yaml"
        short.write_text(yaml.safe_dump(automation))
        running.cli("automation", "create", "--from-file", str(short))
        yield running


def _shard_runs(server: PrefectServer) -> list[FlowRun]:
    return list(server.api(lambda c: c.read_flow_runs(
        flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"{RUN_ID}-")),
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["attach-shard"])))))


def _wait_for(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s:g} s")
        time.sleep(2)


def _running(runs: list[FlowRun]) -> list[FlowRun]:
    return [r for r in runs if r.state is not None and r.state.type == StateType.RUNNING]


def _kill_run(run: FlowRun) -> None:
    """SIGKILL the process of a flow run (a process worker starts each in a session of its own)."""
    if run.infrastructure_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(str(run.infrastructure_pid).rsplit(":", 1)[-1]), signal.SIGKILL)


def test_a_shard_run_whose_worker_was_killed_is_crashed_and_gives_its_rate_share_back(
    server: PrefectServer, fin_sandbox: Any, bucket: str, tmp_path: Path
) -> None:
    world = demo_world(customers=12)
    rows, files = demo_rows(world, bucket)
    load_world(fin_sandbox.url, world)
    manifest = put_scenario(bucket, rows, files)
    settings = {"FIN_API_URL": fin_sandbox.url, "FIN_CLIENT_ID": CLIENT_ID, "FIN_CLIENT_SECRET": CLIENT_SECRET,
                "KYC_ATTACH_SETTLE_DELAY_S": "0",
                # two shards crawling at a shared 0.5 request/s: both still work long after one worker is killed
                "KYC_ATTACH_RATE_LIMIT_RPS": "0.5"}
    parent_env = server.env(**settings, KYC_ATTACH_WORK_DIR=str(tmp_path / "parent"), KYC_ATTACH_SHARD_ROWS="30",
                            KYC_ATTACH_SHARD_DEPLOYMENT=SHARD_DEPLOYMENT, KYC_ATTACH_WORK_URI=f"s3://{bucket}/work",
                            KYC_ATTACH_LEDGER_URI=f"s3://{bucket}/ledger")  # fan-out keeps its ledger on S3
    with server.worker(POOL, server.env(**settings, KYC_ATTACH_WORK_DIR=str(tmp_path / "w1")), name="w1",
                       limit=1) as w1, \
            server.worker(POOL, server.env(**settings, KYC_ATTACH_WORK_DIR=str(tmp_path / "w2")), name="w2",
                          limit=1):
        parent = subprocess.Popen([sys.executable, "-m", "flows.commands.cli", "run", manifest, "--report-uri",
                                   f"s3://{bucket}/reports", "--run-id", RUN_ID, "--no-progress"], cwd=ROOT,
                                  env=parent_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            both = _wait_for("two RUNNING shard runs", lambda: len(_running(_shard_runs(server))) >= 2 and
                             _running(_shard_runs(server)), timeout_s=240)
            assert len(both) == 2
            _wait_for("both shard runs counted as sharing the rate", lambda: server.api(_count) == 2, timeout_s=60)
            # the worker w1 dies with the machine: the worker and the flow run process it started, at once
            victim = next(r for r in both if _worker_of(server, r) == "w1")
            os.killpg(w1.pid, signal.SIGKILL)
            _kill_run(victim)

            crashed = _wait_for("crashed shard run", lambda: [
                r for r in _shard_runs(server) if r.state is not None and r.state.type == StateType.CRASHED],
                timeout_s=WITHIN_S + 30 + 60)
            assert [r.id for r in crashed] == [victim.id]
            survivors = _running(_shard_runs(server))
            assert [r.id for r in survivors] == [r.id for r in both if r.id != victim.id]
            # what every shard run divides the rate by: the survivor now takes the whole of it
            assert server.api(lambda c: _count(c)) == 1
        finally:
            _kill_group(parent)
            for run in _shard_runs(server):
                _kill_run(run)


async def _count(client: Any) -> int:
    from prefect.client.schemas.filters import FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags

    return int(await client.count_flow_runs(flow_run_filter=FlowRunFilter(
        tags=FlowRunFilterTags(all_=[sending_tag(rate_tag(LIMIT))]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))))


def _worker_of(server: PrefectServer, run: FlowRun) -> str | None:
    """The name of the worker that started ``run``, from the worker's log (it names the flow run it submits)."""
    log = (server.home / "worker-w1.log").read_text(errors="replace")
    return "w1" if str(run.id) in log else "w2"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
