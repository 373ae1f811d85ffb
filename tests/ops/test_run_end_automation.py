"""A Prefect automation on the run's end event fires on a real Prefect server (`prefect server start`): the recipe of
docs/operations.md, with a do-nothing action standing in for the notification (which needs a Slack or e-mail block).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.support.prefect_server import PrefectServer, prefect_server
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET
from tests.support.scenario import stage_refused_party

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as running:
        yield running


def _create_automation(server: PrefectServer) -> Any:
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    automation = AutomationCore(
        name="kyc-attach partial failure",
        trigger=EventTrigger(expect={"kyc-attach.run.partial", "kyc-attach.run.failed"}, match={
            "prefect.resource.id": "kyc-attach.run.*"}, posture=Posture.Reactive, threshold=1),
        actions=[DoNothing()],
    )
    return server.api(lambda c: c.create_automation(automation))


def _fired(server: PrefectServer, automation_id: Any, timeout_s: float = 60) -> list[Any]:
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline = time.monotonic() + timeout_s
    while True:
        events = server.api(lambda c: _read_events(c, EventFilter(
            event=EventNameFilter(prefix=["prefect.automation.triggered"]),
            resource=EventResourceFilter(id=[f"prefect.automation.{automation_id}"]))))
        if events or time.monotonic() > deadline:
            return events
        time.sleep(1)


def _kyc_events() -> Any:
    from prefect.events.filters import EventFilter, EventNameFilter

    return EventFilter(event=EventNameFilter(prefix=["kyc-attach.", "prefect.automation"]))


async def _read_events(client: Any, event_filter: Any) -> list[Any]:
    answer = await client._client.post("/events/filter", json={"filter": event_filter.model_dump(mode="json"),
                                                                "limit": 10})
    answer.raise_for_status()
    return list(answer.json()["events"])


def test_an_automation_on_partial_failure_fires_when_a_run_has_failed_rows(
    server: PrefectServer, fin_sandbox: Any, bucket: str, tmp_path: Path
) -> None:
    automation_id = _create_automation(server)
    manifest, _ = stage_refused_party(bucket, fin_sandbox.url)
    env = server.env(FIN_API_URL=fin_sandbox.url, FIN_CLIENT_ID=CLIENT_ID, FIN_CLIENT_SECRET=CLIENT_SECRET,
                     KYC_ATTACH_WORK_DIR=str(tmp_path / "work"))
    done = subprocess.run([sys.executable, "-m", "flows.commands.cli", "run", manifest, "--report-uri",
                           f"s3://{bucket}/reports", "--run-id", "partial-1", "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stderr  # the CLI's code for a written report with failed rows

    fired = _fired(server, automation_id)
    assert len(fired) == 1, server.api(lambda c: _read_events(c, _kyc_events()))
    runs = server.api(lambda c: c.read_flow_runs())
    assert [r.state.type.value for r in runs if r.flow_id and r.state] == ["FAILED"]
