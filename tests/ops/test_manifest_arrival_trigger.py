"""A manifest landing starts the nightly deployment through its event trigger, once per burst, on a real Prefect
server with deployments/prefect.yaml applied (no worker: the run created is what is checked)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench.support.prefect_server import PrefectServer, prefect_server

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as server:
        server.cli("work-pool", "create", "kyc-attach-process", "--type", "process")
        server.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
        yield server


def _nightly_runs(server: PrefectServer) -> list[Any]:
    """Runs of the nightly deployment not made by its cron schedule."""
    async def read(client: Any) -> list[Any]:
        dep = await client.read_deployment_by_name("kyc-attach-nightly/nightly")
        return [r for r in await client.read_flow_runs() if r.deployment_id == dep.id and not r.auto_scheduled]

    runs: list[Any] = server.api(read)
    return runs


def test_a_burst_of_landed_manifests_starts_exactly_one_nightly_run(deployed: PrefectServer) -> None:
    assert _nightly_runs(deployed) == []
    for n in range(4):  # four files of one delivery, as S3 → EventBridge would post them
        deployed.cli("event", "emit", "kyc-attach.manifest.landed", "--resource-id", "kyc-attach.inbox.kyc-inbox",
                     "--payload", f'{{"key": "manifests/part-{n}.csv"}}')
    deadline = time.monotonic() + 90
    while not (runs := _nightly_runs(deployed)) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(10)  # time for a second run to appear, if the trigger were not debounced
    runs = _nightly_runs(deployed)
    assert len(runs) == 1
    assert runs[0].parameters["settle_s"] == 60  # the run waits for the rest of the burst before listing


def test_other_events_start_nothing(deployed: PrefectServer) -> None:
    before = len(_nightly_runs(deployed))
    deployed.cli("event", "emit", "kyc-attach.run.completed", "--resource-id", "kyc-attach.run.r1")
    deployed.cli("event", "emit", "kyc-attach.manifest.landed", "--resource-id", "somewhere.else")
    time.sleep(15)
    assert len(_nightly_runs(deployed)) == before
