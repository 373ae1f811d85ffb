"""The API rate shared by the shard runs of a fanned-out run: split evenly among the runs working, counted on Prefect.

Every shard run carries the tag ``kyc-attach-rate:<name>`` (``rate_tag``). Each one counts, every ``poll_s``
seconds, the RUNNING flow runs with that tag on the Prefect server and sets its own ceiling to R / count. The
shares add up to R whenever the counts are fresh, and each process spends its share through its own smooth
limiters (``connectors.rate_limiter``), so the API sees R spread evenly, never several processes' bursts at
once. It costs one Prefect call per process every ``poll_s`` seconds, not one per request (one slot of a global
concurrency limit per request capped a fanned-out run near 30 requests/s). A share below what the API allows
is found by each process's own closed loop, as in a single-process run.

Why not leases of a Prefect global concurrency limit (the design before this one): a process spent its
leased batch at its own rate, up to R, so the batches of several processes reached the API together at
several times R for a fraction of a second. A gateway whose bucket holds R/10 refused 15% of the requests at
R = 100, and refused leases waited ever longer ``Retry-After`` s: 20–30% of R was reached.

Staying under R while runs come and go:
- A run starting waits ``poll_s`` and a margin after its first count before its first request, so that every
  other run has counted it and lowered its share before it spends its own. For that, every run counts on a
  beat of ``poll_s`` from its first count, whatever the server's latency and whether it sends yet.
- A run ending raises the others' share at their next count: its share is idle at most ``poll_s``.
- A run that cannot reach the Prefect server, or gets no answer within the start margin, cannot see runs
  starting either (a count answered later may come after a run that started meanwhile has begun to send):
  it assumes at least the count the parent expects (the shard runs it lets run at once), at its start and later,
  and otherwise keeps the count it had. A count of 0 (its own state not yet visible) is taken as 1.
Concurrent parent runs with the same name share the rate too, as they share the API.
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
#: Seconds between two counts of the runs sharing the rate. A run starting waits one and START_MARGIN_S before its
#: first request, and a run ending leaves its share idle for up to one: at 2 s, a fanned-out bench run (2 workers,
#: 4 shards, R = 100) had seconds 1-3 at 29-31% of R (1 s: 56-82%); 85% of R over the run (1 s: 86%, one run each).
POLL_S = 1.0
#: What a run starting waits past one poll, for the others' count to reach the Prefect server and back.
START_MARGIN_S = 0.5


class RateShare(BaseModel):
    """What a shard run needs to take its share: the tag of the runs sharing, the rate they share, and how many
    the parent lets work at once (the count assumed while the Prefect server cannot be asked)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str
    total_rps: float = Field(gt=0)
    expected_runs: int = Field(1, ge=1)


def rate_tag(name: str) -> str:
    """The tag that marks a shard run as one of those sharing the rate called ``name``."""
    return f"kyc-attach-rate:{name}"


async def count_running(tag: str) -> int:
    """Flow runs with ``tag`` RUNNING now, on the Prefect server this process talks to."""
    # Prefect is imported here, not at module level: the CLI's small commands (validate, report) build their
    # storage through flows.runtime and must start without loading Prefect.
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
    """One run's share: the rate less one request per run, split evenly.

    A run's limiters hold one request in hand (``SHARED_BURST_S``), so in any one second a run may send its share
    and one more: ``runs`` requests set aside keep every second at ``total_rps`` or under. With fewer requests a
    second than twice the runs, half the rate is split instead (a run cannot go slower than its floor anyway).
    """
    return max(total_rps - runs, total_rps / 2) / runs


@asynccontextmanager
async def share_of_rate(tag: str, total_rps: float, apply: Callable[[float], None], *, expected_runs: int = 1,
                        poll_s: float = POLL_S,
                        start_margin_s: float = START_MARGIN_S,
                        count: Callable[[str], Awaitable[int]] = count_running,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncIterator[None]:
    """Hold this process's share of ``total_rps`` while the block runs: ``apply(share)`` now and on every change.

    Enters after the start-up wait (see the module's docstring); the counting stops when the block ends.
    """
    async def step(runs: int) -> int:
        # Out of reach, this run cannot see runs starting either: at least the parent's count of runs at once
        # (keeping the last share lets a run starting meanwhile push the sum to 1.5 R).
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

    # Counts begin on a beat of poll_s from this run's first one, however long the server takes to answer and
    # whether or not this run sends yet: a run starting later sends poll_s and a margin after its own first
    # count came back, by when every run has counted it. Counting after the start-up wait, then every
    # poll_s + latency, would let runs starting together, or one starting while the server is slow, send before the
    # others have lowered their shares (up to 2 R).
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
    """``count(tag)`` if it answers ``within`` seconds; ``known`` when Prefect cannot be reached or is slower.

    A count slower than the start margin is as good as none: a run that turned RUNNING when it was asked may
    already send when it comes (1.5 R with this run's counts answered in 1.2 s and the new run's at once, 1.5 R
    with a server answering in 6 s). The parent's runs at once, assumed instead, is never too few
    for one parent; a server answering slower than the margin all the time keeps the runs at that share.
    """
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
