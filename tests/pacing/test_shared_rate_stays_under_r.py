"""Fanned-out shard runs share R (connectors.rate_share) without the sum of their shares passing R at any instant,
whatever the latency of the Prefect server's counts: several runs at once on one virtual clock
(``bench.support.gateway_sim.VirtualClock``), the shares summed each time it moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date

import pytest

from bench.support.gateway_sim import VirtualClock
from connectors.rate_share import RateShare, share_of_rate
from flows.fanout import shard_run_key
from flows.shard_flow import ShardJob

R = 400.0
TAG = "kyc-attach-rate:fin"


class _Server:
    """The Prefect server: which runs are RUNNING; a count reads them when asked and answers ``latency_s`` later."""

    def __init__(self, clock: VirtualClock, latency_s: float) -> None:
        self.clock = clock
        self.latency_s = latency_s
        self.running: set[str] = set()
        self.down = False
        self.refuses_marks_until: dict[str, float] = {}  # a run's marks answered 500 until then; counts still answered

    async def count(self, tag: str, latency_s: float | None = None) -> int:
        seen = len(self.running)
        down = self.down
        await self.clock.sleep(self.latency_s if latency_s is None else latency_s)
        if down:
            raise ConnectionError("prefect unreachable")
        return seen


class _Run:
    """One shard run: marked as sharing on the server from ``start``, sending from when it enters the share's
    block."""

    def __init__(self, name: str, clock: VirtualClock, server: _Server, *, expected_runs: int = 1,
                 latency_s: float | None = None) -> None:
        self.name = name
        self.latency_s = latency_s
        self.clock = clock
        self.server = server
        self.expected_runs = expected_runs
        self.share = 0.0
        self.sending = False

    def apply(self, share: float) -> None:
        self.share = share

    async def count(self, tag: str) -> int:
        return await self.server.count(tag, self.latency_s)

    async def mark(self, tag: str, sharing: bool) -> None:
        """The tag is written once the call has taken the server's latency: the latest the others can see it. Taken
        off at once: the run has stopped sending by then (and a run cancelled at the end has no clock to wait on)."""
        if sharing:
            await self.clock.sleep(self.server.latency_s if self.latency_s is None else self.latency_s)
            if self.clock.now < self.server.refuses_marks_until.get(self.name, -1.0):
                raise RuntimeError("prefect answered 500")
            self.server.running.add(self.name)
        else:
            self.server.running.discard(self.name)

    async def live(self, start: float, stop: float) -> None:
        await self.clock.sleep(start)
        async with share_of_rate(TAG, R, self.apply, expected_runs=self.expected_runs, poll_s=2.0,
                                 start_margin_s=0.5, count=self.count, mark=self.mark, sleep=self.clock.sleep):
            self.sending = True
            await self.clock.sleep(stop - self.clock.now)
            self.sending = False


def _simulate(runs: list[tuple[str, float, float]], *, latency_s: float, until: float,
              expected_runs: int = 1, down: tuple[float, float] | None = None,
              latency_of: dict[str, float] | None = None,
              refuses_marks_until: dict[str, float] | None = None) -> float:
    """Runs (name, start, stop) on one server; the highest total of the sending runs' shares at any instant.
    ``latency_of``: a run's own count latency, where it differs from ``latency_s``; ``refuses_marks_until``: when
    the server stops refusing a run's marks."""
    clock = VirtualClock()
    server = _Server(clock, latency_s)
    server.refuses_marks_until = refuses_marks_until or {}
    shard_runs = [_Run(name, clock, server, expected_runs=expected_runs, latency_s=(latency_of or {}).get(name))
                  for name, _, _ in runs]

    def outage(now: float) -> None:
        if down is not None:
            server.down = down[0] <= now < down[1]

    return _worst_sum(clock, list(zip(shard_runs, runs, strict=True)), until, outage)


def _worst_sum(clock: VirtualClock, runs: list[tuple[_Run, tuple[str, float, float]]], until: float,
               each_step: Callable[[float], None] = lambda now: None) -> float:
    """Drive ``runs`` (each with its name, start and stop) to ``until``: the highest total of the sending runs'
    shares at any instant. ``each_step``: what changes on the server as the clock moves."""
    worst = 0.0

    def step(now: float) -> None:
        nonlocal worst
        each_step(now)
        worst = max(worst, sum(r.share for r, _ in runs if r.sending))

    async def go() -> None:
        tasks = [asyncio.ensure_future(r.live(start, stop)) for r, (_, start, stop) in runs]
        await clock.drive(until, step)
        step(clock.now)  # the shares the last wake-ups left
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(go())
    return worst


def test_instant_counts_keep_the_sum_at_r() -> None:
    """The design's case: counts answered at once. A run starting at any moment never pushes the sum past R."""
    for offset in (0.01, 0.3, 0.77, 1.2, 1.99):
        worst = _simulate([("a", 0.0, 30.0), ("b", 6.0 + offset, 30.0)], latency_s=0.0, until=20.0)
        assert worst <= R + 1e-6, offset


@pytest.mark.parametrize("latency_s", [0.6, 0.9, 1.5])
def test_a_slow_count_does_not_let_a_starting_run_push_the_sum_past_r(latency_s: float) -> None:
    """Counts answered in a fraction of a second (a busy Prefect server, 2 cores shared with 32 shard runs).
    The follower counted, then slept ``poll_s``: its counts began every poll_s + latency, so a run turning
    RUNNING just after one began sent its share (after its own count and 2.5 s) before the running run's next
    count came back: 1.5 R for up to ``latency - start_margin`` s, each time a run starts. Counting on a fixed
    beat (the sleep running alongside the count) keeps the lead the design counts on whatever the latency."""
    third_count_began = (latency_s + 2.5) + 2 * (2.0 + latency_s)  # run a's counts, with the old follower
    worst = _simulate([("a", 0.0, 40.0), ("b", third_count_began + 0.01, 40.0)], latency_s=latency_s, until=30.0,
                      expected_runs=2)
    assert worst <= R + 1e-6


def test_prefect_out_of_reach_mid_run_does_not_let_a_new_run_push_the_sum_past_r() -> None:
    """Run a works alone at R; the Prefect server stops answering counts (overloaded: its API times out, while
    it still hands the next shard run to a worker). Run b starts, cannot count, takes R / expected_runs as
    designed; run a "keeps its share" (R): 1.5 R until the server answers again. A run that cannot count cannot
    see runs starting either: the most it can assume safely is the parent's count of runs at once."""
    worst = _simulate([("a", 0.0, 40.0), ("b", 8.0, 40.0)], latency_s=0.0, until=30.0, expected_runs=2,
                      down=(6.0, 20.0))
    assert worst <= R + 1e-6


@pytest.mark.parametrize("latency_s", [0.2, 0.4])
def test_runs_starting_together_do_not_push_the_sum_past_r(latency_s: float) -> None:
    """A fan-out's first wave: four shard runs turn RUNNING 0.1 s apart. Each one's first count sees only those
    before it (R, R/2, R/3, R/4), and its next count began only after its own start-up wait (poll_s + margin
    after the first count came back), so the later runs sent before the earlier ones had lowered theirs: over
    R for up to the count's latency. Counting on a beat from the first count (the next one poll_s after it)
    has every run counted again before any of them sends."""
    starts = [0.0, 0.1, 0.2, 0.3]
    worst = _simulate([(f"r{i}", s, 40.0) for i, s in enumerate(starts)], latency_s=latency_s, until=20.0,
                      expected_runs=4)
    assert worst <= R + 1e-6


def test_a_retried_parent_finds_its_shard_runs_whatever_the_rate_settings() -> None:
    """The ShardJob now carries the rate share (R and the runs at once), and the shard run's idempotency key
    digested every field: a parent retried (the UI's Retry, another worker) after KYC_ATTACH_RATE_LIMIT_RPS or
    KYC_ATTACH_FANOUT_CONCURRENCY was changed (the usual answer to 429s) no longer found the shard runs it had
    started and started every shard again, while the first ones may still run. The rate is not part of which
    job a shard run does."""
    base = {"run_id": "r1", "shard": "s0001", "rows_uri": "s3://w/r1/rows/s0001.arrow", "work_prefix": "s3://w/r1",
            "part_uri": "s3://w/r1/parts/s0001.parquet", "ledger_root": "s3://rep/ledger",
            "run_date": date(2026, 11, 29)}
    before = ShardJob(**base, rate_share=RateShare(tag=TAG, total_rps=400.0, expected_runs=32))
    after = ShardJob(**base, rate_share=RateShare(tag=TAG, total_rps=200.0, expected_runs=8))
    assert shard_run_key(before) == shard_run_key(after)
    assert shard_run_key(before) != shard_run_key(ShardJob(**{**base, "dry_run": True}))  # the mode still counts


def test_a_live_shard_job_without_a_rate_share_is_refused() -> None:
    """A live shard run without a rate share (started by hand from the UI, or by a parent of the version
    before, whose jobs had none) worked at the whole of R, untagged, so no other run counted it: R more on top
    of the shared R. The limit it replaced was strict (a missing limit failed the request rather than running
    unlimited); the share is now as strict: a live job must carry one."""
    base = {"run_id": "r1", "shard": "s0001", "rows_uri": "s3://w/r1/rows/s0001.arrow", "work_prefix": "s3://w/r1",
            "part_uri": "s3://w/r1/parts/s0001.parquet", "ledger_root": "s3://rep/ledger",
            "run_date": date(2026, 11, 29)}
    with pytest.raises(ValueError, match="rate_share"):
        ShardJob.model_validate(base)
    ShardJob.model_validate({**base, "dry_run": True})  # a dry run sends nothing: no share needed


@pytest.mark.parametrize("latency_s", [3.0, 6.0])
@pytest.mark.parametrize("b_starts", [10.01, 11.5, 13.0])
def test_a_count_slower_than_a_poll_is_taken_for_no_answer(latency_s: float, b_starts: float) -> None:
    """The Prefect server answers, but in seconds (SQLite under 32 shard runs' state changes on 2 cores; the
    client's own timeout is 30 s and more). A run waited for every answer: its counts were latency apart and as
    old as that when they came, so a run starting meanwhile sent long before the others knew of it. A count not
    back within a poll is no count: the run assumes the parent's runs at once, as when Prefect is out of reach."""
    worst = _simulate([("a", 0.0, 60.0), ("b", b_starts, 60.0)], latency_s=latency_s, until=50.0, expected_runs=2)
    assert worst <= R + 1e-6


@pytest.mark.parametrize("b_starts", [2.01, 2.3, 3.0, 4.01, 5.5])
def test_a_run_whose_counts_are_slower_than_a_starting_runs_does_not_push_the_sum_past_r(b_starts: float) -> None:
    """Counts answered unevenly (run a's in 1.2 s, run b's at once: another worker, another moment of the
    server's load). b sends 2.5 s after its count; a learnt of b up to 2 + 1.2 s after b turned RUNNING: 1.5 R.
    A count not back within the start margin is no count (the parent's runs at once are assumed)."""
    worst = _simulate([("a", 0.0, 40.0), ("b", b_starts, 40.0)], latency_s=0.0, until=30.0, expected_runs=2,
                      latency_of={"a": 1.2})
    assert worst <= R + 1e-6


@pytest.mark.parametrize("refused_until", [7.0, 1000.0])
def test_a_run_prefect_refuses_to_mark_does_not_push_the_sum_past_r(refused_until: float) -> None:
    """The server answers counts but refuses a run's mark (a 500 on the update, or no answer in time): the others
    count only the runs marked and never see it, so its share comes on top of theirs (1.5 R with two runs), however
    it counts itself. It sends only once marked."""
    worst = _simulate([("a", 0.0, 60.0), ("b", 6.0, 60.0)], latency_s=0.1, until=40.0, expected_runs=2,
                      refuses_marks_until={"b": refused_until})
    assert worst <= R + 1e-6


def test_a_run_marked_after_refusals_gets_its_share() -> None:
    """Refused for a while, then marked: the run sends (it does not wait for ever) and the sum stays under R."""
    clock = VirtualClock()
    server = _Server(clock, 0.1)
    server.refuses_marks_until = {"b": 7.0}
    b = _Run("b", clock, server, expected_runs=2)

    async def go() -> None:
        task = asyncio.ensure_future(b.live(6.0, 60.0))
        await clock.drive(20.0, lambda now: None)
        assert b.sending and "b" in server.running
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())


def test_a_run_starting_while_prefect_is_out_of_reach_does_not_push_the_sum_past_r() -> None:
    """Prefect out of reach from 5 s to 20 s (counts fail, marks refused): run b starts at 6 s. Had it gone on
    unmarked, counting itself in, a would have taken R - 1 at the first count after the outage and b its half on
    top: 1.5 R until a counted b's mark. b waits for its mark instead."""
    worst = _simulate([("a", 0.0, 60.0), ("b", 6.0, 60.0)], latency_s=0.1, until=40.0, expected_runs=2,
                      down=(5.0, 20.0), refuses_marks_until={"b": 20.0})
    assert worst <= R + 1e-6


def test_a_count_lost_while_prefect_refuses_a_runs_mark_does_not_let_it_send() -> None:
    """b's marks refused for good and one of its counts lost at 6.1 s: taking the blip for an outage and going on
    unmarked sent b's share on top of a's R - 1 for the rest of the run (1.5 R)."""
    worst = _simulate([("a", 0.0, 60.0), ("b", 6.0, 60.0)], latency_s=0.1, until=40.0, expected_runs=2,
                      down=(6.05, 6.15), refuses_marks_until={"b": 10**6})
    assert worst <= R + 1e-6


@pytest.mark.parametrize("latency_s", [0.0, 0.1, 0.4])
@pytest.mark.parametrize("back_at", [20.0, 20.05, 21.0])
def test_runs_started_while_prefect_was_down_marking_at_once_when_it_returns_do_not_push_the_sum_past_r(
        latency_s: float, back_at: float) -> None:
    """Six shard runs start while Prefect refuses every mark and answers no count; it comes back at once for all:
    they mark within one poll of each other and send on the same beat. Two runs were sending before the outage."""
    names = ["a", "b"] + [f"n{i}" for i in range(6)]
    starts = {"a": 0.0, "b": 0.3, **{f"n{i}": 6.0 + 0.37 * i for i in range(6)}}
    worst = _simulate([(n, starts[n], 60.0) for n in names], latency_s=latency_s, until=45.0, expected_runs=8,
                      down=(5.0, back_at), refuses_marks_until={f"n{i}": back_at for i in range(6)})
    assert worst <= R + 1e-6


@pytest.mark.parametrize("period", [0.7, 1.3, 2.0, 3.1])
def test_prefect_flapping_does_not_push_the_sum_past_r(period: float) -> None:
    """Prefect answering and not by turns (counts lost, marks refused) while four runs start and stop."""
    runs = [("a", 0.0, 50.0), ("b", 3.3, 30.0), ("c", 7.1, 45.0), ("d", 12.9, 40.0)]
    clock = VirtualClock()
    server = _Server(clock, 0.1)
    shard_runs = [_Run(n, clock, server, expected_runs=4) for n, _, _ in runs]

    def refuses(now: float) -> bool:
        return int(now / period) % 2 == 1

    async def mark(run: _Run, tag: str, sharing: bool) -> None:
        if sharing and refuses(clock.now):
            raise RuntimeError("prefect answered 500")
        await _Run.mark(run, tag, sharing)

    for r in shard_runs:
        r.mark = lambda tag, sharing, r=r: mark(r, tag, sharing)  # type: ignore[method-assign]

    def flap(now: float) -> None:
        server.down = refuses(now)

    assert _worst_sum(clock, list(zip(shard_runs, runs, strict=True)), 60.0, flap) <= R + 1e-6


def test_a_count_raising_cancelled_error_of_its_own_does_not_leave_a_run_at_its_old_share() -> None:
    """Run a's count at 4 s raises CancelledError (a client's cancel scope, a. not cancelled): the follower ended,
    a kept R - 1 for the rest of its block and never saw b start: R - 1 + R / 2."""
    clock = VirtualClock()
    server = _Server(clock, 0.0)
    a, b = _Run("a", clock, server, expected_runs=2), _Run("b", clock, server, expected_runs=2)

    async def count_a(tag: str) -> int:
        if clock.now == 4.0:
            raise asyncio.CancelledError()
        return await server.count(tag)

    a.count = count_a  # type: ignore[method-assign]
    assert _worst_sum(clock, [(a, ("a", 0.0, 40.0)), (b, ("b", 8.0, 40.0))], 30.0) <= R + 1e-6
