"""The runs sharing a rate are counted on a real Prefect server: by tag, RUNNING ones only."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Completed, Pending, Running

from connectors.rate_share import count_running, rate_tag

pytestmark = [pytest.mark.usefixtures("prefect_harness")]


@flow
def _a_shard() -> None:
    """Stands for the shard flow: only its runs' tags and states matter here."""


def test_only_running_runs_with_the_tag_are_counted() -> None:
    tag = rate_tag(f"t-{uuid.uuid4().hex[:8]}")

    async def go() -> list[int]:
        seen = [await count_running(tag)]
        async with get_client() as client:
            runs = [await client.create_flow_run(_a_shard, tags=[tag, "other"], state=Running()) for _ in range(3)]
            await client.create_flow_run(_a_shard, tags=[tag], state=Pending())  # not working yet
            await client.create_flow_run(_a_shard, tags=[rate_tag("another-api")], state=Running())
            seen.append(await count_running(tag))
            await client.set_flow_run_state(runs[0].id, Completed(), force=True)  # one ended
            seen.append(await count_running(tag))
        return seen

    assert asyncio.run(go()) == [0, 3, 2]
