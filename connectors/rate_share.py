"""The API rate shared by the shard runs of a fanned-out run: split evenly among the runs working, counted on Prefect.

A shard run puts the tag ``sending_tag(rate_tag(name))`` on itself while it may send and, every ``poll_s``, counts
the RUNNING (and CANCELLING) flow runs with it and sets its ceiling to its share (``share_each``); each spends it
through its own limiters. Why counts and not a global concurrency limit, and how the sum stays under R while runs
come and go: docs/design/sharding.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import SetupError

log = logging.getLogger("kyc_attach.rate_share")
T = TypeVar("T")

#: The limiters' burst in a run sharing the rate: none beyond the one request a limiter always holds.
SHARED_BURST_S = 0.0
#: Seconds between two counts: a run starting waits one (and START_MARGIN_S) before its first request, a run ending
#: leaves its share idle for up to one. At 2 s the first seconds of a fanned-out run went at a third of R.
POLL_S = 1.0
#: The longest a run waits for Prefect to mark it as sharing or not (two calls to the server).
MARK_TIMEOUT_S = 10.0
#: What a run starting waits past one poll, for the others' count to reach the Prefect server and back.
START_MARGIN_S = 0.5
#: How long a run waits for Prefect to mark it before it stops: a refusal that long is a credential without the right
#: to update flow runs, or a server that is gone, not a passing error; waiting longer would hang the run.
MARK_GIVE_UP_S = 300.0


class RateShare(BaseModel):
    """The tag of the runs sharing, the rate they share, and how many the parent lets work at once (the count
    assumed while the Prefect server cannot be asked)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str
    total_rps: float = Field(gt=0)
    expected_runs: int = Field(1, ge=1)


def rate_tag(name: str) -> str:
    """The tag the parent gives each shard run sharing the rate called ``name``: the zombie automation judges the
    runs with it (deployments/zombie-automation.yaml; a heartbeat names the tags its run was created with)."""
    return f"kyc-attach-rate:{name}"


def sending_tag(tag: str) -> str:
    """The tag a run sharing the rate of ``tag`` puts on itself while it may send: the runs counted."""
    return f"{tag}:sending"


async def mark_this_run(tag: str, sharing: bool) -> None:
    """Put ``tag`` on the flow run of this process (``sharing``) or take it off, so that the others count it only
    while it may send: not while it starts, nor while it writes its report. Nothing outside a flow run."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if not flow_run.id:
        return
    async with get_client() as client:
        run = await client.read_flow_run(UUID(flow_run.id))
        await client.update_flow_run(run.id, tags=[t for t in run.tags if t != tag] + ([tag] if sharing else []))


async def count_running(tag: str) -> int:
    """Flow runs with ``tag`` RUNNING or CANCELLING now (a run being cancelled sends until its process is stopped),
    on the Prefect server this process talks to."""
    # imported here: the CLI's small commands build their storage through flows.runtime and start without Prefect
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters
    from prefect.client.schemas.objects import StateType

    states = filters.FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.CANCELLING])
    async with get_client() as client:
        return await client.count_flow_runs(flow_run_filter=filters.FlowRunFilter(
            tags=filters.FlowRunFilterTags(all_=[tag]), state=filters.FlowRunFilterState(type=states)))


def share_each(total_rps: float, runs: int) -> float:
    """One run's share: the rate less one request per run (the one a run's limiters hold in hand, so that no second
    passes ``total_rps``), split evenly; half the rate where that leaves less."""
    return max(total_rps - runs, total_rps / 2) / runs


@asynccontextmanager
async def share_of_rate(tag: str, total_rps: float, apply: Callable[[float], None], *, expected_runs: int = 1,
                        poll_s: float = POLL_S,
                        start_margin_s: float = START_MARGIN_S,
                        count: Callable[[str], Awaitable[int]] = count_running,
                        mark: Callable[[str, bool], Awaitable[None]] = mark_this_run,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncIterator[None]:
    """Hold this process's share of ``total_rps`` while the block runs: ``apply(share)`` now and on every change.
    Marks this run as sharing (``mark``), then enters a poll and a margin after the first count, when every other
    run has counted this one; unmarks it on the way out."""
    sending = sending_tag(tag)
    # Unmarked, the others cannot count this run: it sends nothing until Prefect has marked it, out of reach or
    # refusing, and stops with the reason once MARK_GIVE_UP_S have passed (on the clock of ``sleep``).
    beat: asyncio.Future[None] | None = None
    follower: asyncio.Task[None] | None = None

    async def step(runs: int) -> int:
        # Out of reach, this run cannot see runs starting either: it assumes at least the parent's runs at once
        seen = max(1, await _or(count(sending), max(runs, expected_runs), start_margin_s, sleep, "count the runs"))
        if seen != runs:
            apply(share := share_each(total_rps, seen))
            log.info("rate %s: %d run(s) share %.1f requests/s, %.1f each", tag, seen, total_rps, share)
        return seen

    async def follow(runs: int, beat: Awaitable[None]) -> None:
        await beat
        while True:
            runs, _ = await asyncio.gather(step(runs), sleep(poll_s))

    async def marked() -> None:
        while await _or(mark(sending, True), False, MARK_TIMEOUT_S, sleep, "mark this run") is not None:
            await sleep(poll_s)

    try:
        if await _or(marked(), False, MARK_GIVE_UP_S, sleep, "mark this run in time") is not None:
            raise SetupError(f"Prefect did not tag this flow run in {MARK_GIVE_UP_S:g} s (out of reach, or refusing: "
                             "the rate share needs the right to update flow runs)")
        # Counts keep a beat of poll_s from the first, however slow the server: counting every poll_s + latency let
        # runs starting together send before the others had lowered their shares (up to 2 R).
        beat = asyncio.ensure_future(sleep(poll_s))
        follower = asyncio.create_task(follow(await step(0), beat))
        await sleep(poll_s + start_margin_s)
        yield
    finally:
        try:
            await _cancel(beat, follower)
        finally:  # taken off even when no mark was answered (one whose answer was lost may have been written)
            await _or(mark(sending, False), False, MARK_TIMEOUT_S, sleep, "unmark this run")


async def _or(call: Awaitable[T], default: T, within: float, sleep: Callable[[float], Awaitable[None]],
              what: str) -> T:
    """``call``'s answer if it comes ``within`` seconds on the clock of ``sleep``; ``default`` when Prefect cannot be
    reached, refuses or is slower (the run goes on): a run that turned RUNNING when a slow count was asked may
    already send when the count comes."""
    answer, timer = asyncio.ensure_future(call), asyncio.ensure_future(sleep(within))
    try:
        await asyncio.wait({answer, timer}, return_when=asyncio.FIRST_COMPLETED)  # this task cancelled: goes out
    finally:
        await _cancel(answer, timer)
    # cancelled: no answer in time, or the call's own CancelledError (a client's cancel scope)
    if answer.cancelled() or isinstance(answer.exception(), Exception):
        failed = f"no answer within {within:g} s" if answer.cancelled() else type(answer.exception()).__name__
        log.warning("rate share: could not %s (%s)", what, failed)
        return default
    return answer.result()  # the answer; an interrupt (a BaseException) goes out


async def _cancel(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` and wait for them to end; this task's own cancellation meanwhile goes out, not swallowed."""
    for task in tasks:
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
