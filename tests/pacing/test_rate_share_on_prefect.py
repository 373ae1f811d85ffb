"""The runs sharing a rate as a real Prefect server counts them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Running

from connectors.rate_share import count_running, rate_tag, sending_tag, share_each, share_of_rate

pytestmark = [pytest.mark.usefixtures("prefect_harness")]


@flow
def _a_shard() -> None:
    """Stands for the shard flow: only its runs' tags and states matter here."""


@pytest.mark.parametrize("name", ["fin api (prod), eu/β", "x" * 300, "a,b", ""])
def test_odd_rate_names_still_count_the_runs(name: str) -> None:
    """The rate's name goes into a tag as written: spaces, commas, slashes, non-ASCII, long or empty."""
    tag = rate_tag(name + uuid.uuid4().hex[:6])
    shares: list[float] = []

    async def go() -> None:
        async with get_client() as client:
            for _ in range(4):
                await client.create_flow_run(_a_shard, tags=[sending_tag(tag)], state=Running())
        async with share_of_rate(tag, 100.0, shares.append, poll_s=3.0, start_margin_s=2.0):
            pass

    asyncio.run(go())
    assert shares == [share_each(100.0, 4)]  # the four runs counted


@pytest.mark.parametrize("name", ["fin", "fin api (prod), eu/β", "x" * 300])
def test_a_flow_run_is_counted_while_it_holds_its_share_and_not_before_or_after(name: str) -> None:
    """A shard run starting (reading its rows) or ending (writing its report) sends nothing: the others keep the
    rate it would idle. The rate's name goes into the run's tag as written."""
    tag = rate_tag(name + uuid.uuid4().hex[:8])
    seen: list[int] = []
    shares: list[float] = []

    @flow
    async def sharing() -> None:
        seen.append(await count_running(sending_tag(tag)))
        async with share_of_rate(tag, 100.0, shares.append, poll_s=0.5, start_margin_s=2.0):
            seen.append(await count_running(sending_tag(tag)))
        seen.append(await count_running(sending_tag(tag)))

    asyncio.run(sharing())
    assert seen == [0, 1, 0]
    assert shares == [share_each(100.0, 1)]


def test_a_run_being_cancelled_is_counted_until_it_has_stopped() -> None:
    """A run an operator cancels goes on sending until its worker stops its process: it keeps its share until it is
    Cancelled, and the runs that ended (Completed, Cancelled, Crashed) are not counted."""
    from prefect.states import Cancelled, Cancelling, Completed, Crashed

    tag = sending_tag(rate_tag("fin" + uuid.uuid4().hex[:8]))

    async def go() -> list[int]:
        async with get_client() as client:
            for state in (Running(), Cancelling(), Cancelled(), Completed(), Crashed()):
                await client.create_flow_run(_a_shard, tags=[tag], state=state)
        return [await count_running(tag)]

    assert asyncio.run(go()) == [2]
