"""A real Prefect server with deployments/prefect.yaml applied, process workers on its pool, and the parent flow
run in this process against that server: what the fan-out tests and bench/bench_fanout.py share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.client.schemas.objects import FlowRun
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from bench.support.prefect_server import PrefectServer
from flows.attach_flow import run_attach
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET

POOL = "kyc-attach-process"
SHARD_DEPLOYMENT = "attach-shard/attach-shard"
LIMIT = "kyc-attach-fin-api"


@dataclass
class FanOutWorld:
    """The running server, its two workers' pids and their work folders (each shard run's scratch space)."""

    server: PrefectServer
    worker_pids: list[int]
    worker_dirs: list[Path] = field(default_factory=list)

    def run(self, manifest: str, report_uri: str, **kwargs: Any) -> dict[str, Any]:
        """The parent flow in this process, against the loopback server (as ``kyc-attach run`` would)."""
        async def go() -> dict[str, Any]:
            return await run_attach(manifest, report_uri, **kwargs)

        _drain_prefect_services()
        with temporary_settings({PREFECT_API_URL: self.server.api_url}):
            try:
                return asyncio.run(go())
            finally:
                _drain_prefect_services()

    def api(self, fn: Any) -> Any:
        """``await fn(client)`` with a Prefect client of the loopback server."""
        return self.server.api(fn)

    def shard_runs(self, run_id: str) -> list[FlowRun]:
        """The shard deployment's flow runs that a parent run started (named ``<run id>-<shard>``)."""
        return list(self.api(lambda c: c.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"{run_id}-")),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["attach-shard"])))))

    @contextmanager
    def shard_env(self, **env: str) -> Iterator[None]:
        """Extra environment for shard runs, set on the deployment's job variables (merged over the worker's
        environment by the process worker) as an operator would; the deployment is restored afterwards."""
        async def read(client: Any) -> Any:
            return await client.read_deployment_by_name(SHARD_DEPLOYMENT)

        deployment = self.api(read)
        before = dict(deployment.job_variables or {})
        merged = {**before, "env": {**before.get("env", {}), **env}}

        def update(job_variables: dict[str, Any]) -> None:
            self.api(lambda c: c.update_deployment(deployment.id, DeploymentUpdate(job_variables=job_variables)))

        update(merged)
        try:
            yield
        finally:
            update(before)


def _drain_prefect_services() -> None:
    # Prefect's events and log workers are per process and are not keyed by API URL: flush and stop them at
    # the switch between this server and the session's test harness, or later tests would send to a stopped one.
    EventsWorker.drain_all(timeout=60)
    APILogWorker.drain_all(timeout=60)


def worker_env(server: PrefectServer, sandbox_url: str, work_dir: Path) -> dict[str, str]:
    """A worker's environment: settings and secrets reach shard runs only this way (S3: AWS_* from os.environ)."""
    return server.env(FIN_API_URL=sandbox_url, FIN_CLIENT_ID=CLIENT_ID, FIN_CLIENT_SECRET=CLIENT_SECRET,
                      KYC_ATTACH_WORK_DIR=str(work_dir), KYC_ATTACH_SETTLE_DELAY_S="0")
