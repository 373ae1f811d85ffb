"""The API rate shared by the shard runs of a fanned-out run: split evenly among the runs working, counted on Prefect.

Every shard run carries the tag ``rate_tag(name)`` and, every ``poll_s``, counts the RUNNING flow runs with it and
sets its ceiling to its share (``share_each``); each spends it through its own limiters. Why counts and not a
global concurrency limit, and how the sum stays under R while runs come and go: docs/design/sharding.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("kyc_attach.rate_share")

#: The limiters' burst in a run sharing the rate: none beyond the one request a limiter always holds.
SHARED_BURST_S = 0.0
#: Seconds between two counts: a run starting waits one (and START_MARGIN_S) before its first request, a run ending
#: leaves its share idle for up to one. At 2 s the first seconds of a fanned-out run went at a third of R.
POLL_S = 1.0
#: What a run starting waits past one poll, for the others' count to reach the Prefect server and back.
START_MARGIN_S = 0.5


class RateShare(BaseModel):
    """The tag of the runs sharing, the rate they share, and how many the parent lets work at once (the count
    assumed while the Prefect server cannot be asked)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str
    total_rps: float = Field(gt=0)
    expected_runs: int = Field(1, ge=1)


def rate_tag(name: str) -> str:
    """The tag that marks a shard run as one of those sharing the rate called ``name``."""
    return f"kyc-attach-rate:{name}"


async def count_running(tag: str) -> int:
    """Flow runs with ``tag`` RUNNING now, on the Prefect server this process talks to."""
    # imported here: the CLI's small commands build their storage through flows.runtime and start without Prefect
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    async with get_client() as client:
        return await client.count_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[tag]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
        ))


def share_each(total_rps: float, runs: int) -> float:
    """One run's share: the rate less one request per run (the one a run's limiters hold in hand, so that no second
    passes ``total_rps``), split evenly; half the rate where that leaves less."""
    return max(total_rps - runs, total_rps / 2) / runs


@asynccontextmanager
async def share_of_rate(tag: str, total_rps: float, apply: Callable[[float], None], *, expected_runs: int = 1,
                        poll_s: float = POLL_S,
                        start_margin_s: float = START_MARGIN_S,
                        count: Callable[[str], Awaitable[int]] = count_running,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncIterator[None]:
    """Hold this process's share of ``total_rps`` while the block runs: ``apply(share)`` now and on every change.
    Enters a poll and a margin after the first count, when every other run has counted this one."""
    async def step(runs: int) -> int:
        # Out of reach, this run cannot see runs starting either: it assumes at least the parent's runs at once.
        seen = max(1, await _count_or(max(runs, expected_runs), tag, count, within=start_margin_s, sleep=sleep))
        if seen != runs:
            apply(share_each(total_rps, seen))
            log.info("rate %s: %d run(s) share %.1f requests/s: %.1f each", tag, seen, total_rps,
                     share_each(total_rps, seen))
        return seen

    async def follow(runs: int, beat: Awaitable[None]) -> None:
        await beat
        while True:
            runs, _ = await asyncio.gather(step(runs), sleep(poll_s))

    # Counts keep a beat of poll_s from the first, however slow the server: counting every poll_s + latency let runs
    # starting together send before the others had lowered their shares (up to 2 R).
    beat = asyncio.ensure_future(sleep(poll_s))
    follower: asyncio.Task[None] | None = None
    try:
        follower = asyncio.create_task(follow(await step(0), beat))
        await sleep(poll_s + start_margin_s)
        yield
    finally:
        for pending in (beat, follower):
            if pending is not None:
                pending.cancel()
                with suppress(asyncio.CancelledError):
                    await pending


async def _count_or(known: int, tag: str, count: Callable[[str], Awaitable[int]], *, within: float,
                    sleep: Callable[[float], Awaitable[None]]) -> int:
    """``count(tag)`` if it answers ``within`` seconds; ``known`` when Prefect cannot be reached or is slower: a run
    that turned RUNNING when a slow count was asked may already send when the count comes."""
    counting = asyncio.ensure_future(count(tag))
    timer = asyncio.ensure_future(sleep(within))
    try:
        await asyncio.wait({counting, timer}, return_when=asyncio.FIRST_COMPLETED)
        if not counting.done():
            raise TimeoutError(f"no answer within {within:g} s")
        return counting.result()
    except Exception as exc:  # Prefect unreachable, refusing or too slow: the share is unchanged, the run goes on
        log.warning("rate %s: could not count the runs sharing it (%s); assuming %d", tag, type(exc).__name__,
                    known)
        return known
    finally:
        for pending in (counting, timer):
            if not pending.done():
                pending.cancel()
                with suppress(asyncio.CancelledError):
                    await pending
