"""A shard run's share of the rate shared by the runs working at once: counted, applied, kept when Prefect fails."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable

import pytest

from connectors import rate_share
from connectors.errors import SetupError
from connectors.rate_limiter import EndpointLimiters
from connectors.rate_share import share_each, share_of_rate


class _World:
    """The runs counted on the (fake) Prefect server over a fake clock shared by every coroutine: time moves to
    the earliest sleeper's wake-up once everything else waits (the follower and the start-up wait sleep at once)."""

    def __init__(self, counts: list[int | Exception]) -> None:
        self.now = 0.0
        self.counts = counts
        self.asked: list[float] = []
        self.shares: list[tuple[float, float]] = []  # (time, share applied)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.marks: list[tuple[float, bool]] = []  # (time, marked as sharing or not)
        self.mark_fails = False
        self.marks_refused = 0  # the next marks refused, then taken
        self.tagged = False  # the sending tag on the run, on the server
        self.mark_write_s = 0.0  # a mark (sharing) reaches the server this long after it is asked
        self.answers_lost = 0  # the next marks written on the server, their answers lost (a reset, a client timeout)
        self.mark_answer_s = 0.0  # and a mark's answer comes back this long after the server wrote it

    async def count(self, tag: str) -> int:
        assert tag == "kyc-attach-rate:fin:sending"
        self.asked.append(self.now)
        answer = self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), wake))
        await wake

    async def run_until(self, seconds: float) -> None:
        while True:
            for _ in range(20):
                await asyncio.sleep(0)
            if not self._sleepers or self._sleepers[0][0] > seconds:
                return
            self.now, _, wake = heapq.heappop(self._sleepers)
            if not wake.cancelled():
                wake.set_result(None)

    def apply(self, share: float) -> None:
        self.shares.append((self.now, share))

    async def mark(self, tag: str, sharing: bool) -> None:
        self.marks.append((self.now, sharing))
        if self.mark_fails:
            raise ConnectionError("prefect unreachable")
        if self.marks_refused:
            self.marks_refused -= 1
            raise RuntimeError("prefect answered 500")
        if sharing and self.mark_write_s:
            await self.sleep(self.mark_write_s)
        self.tagged = sharing
        if self.answers_lost:
            self.answers_lost -= 1
            raise ConnectionError("connection reset")
        if sharing and self.mark_answer_s:
            await self.sleep(self.mark_answer_s)


def _hold(world: _World, seconds: float, *, expected_runs: int = 1,
          meanwhile: Callable[[], Awaitable[None]] | None = None) -> None:
    async def hold() -> None:
        async with share_of_rate("kyc-attach-rate:fin", 400.0, world.apply, expected_runs=expected_runs,
                                 poll_s=2.0, start_margin_s=0.5, count=world.count, mark=world.mark,
                                 sleep=world.sleep):
            assert world.now >= 2.5  # a run starting waits until the others have counted it
            await world.sleep(seconds - world.now)

    async def go() -> None:
        task = asyncio.ensure_future(hold())
        other = asyncio.ensure_future(meanwhile()) if meanwhile else None
        await world.run_until(seconds)
        await task
        if other:
            await other

    asyncio.run(go())


def test_the_share_follows_the_runs_working() -> None:
    world = _World([2, 2, 4, 4, 1])
    _hold(world, 12.0)
    assert world.shares == [(0.0, 199.0), (4.0, 99.0), (8.0, 399.0)]  # one request a run kept for its bucket
    # one call every poll, not one per request; on a beat from the first count, the start-up wait or not
    assert world.asked[:4] == [0.0, 2.0, 4.0, 6.0]


def test_prefect_out_of_reach_takes_the_expected_share() -> None:
    world = _World([RuntimeError("down"), 3, RuntimeError("down"), RuntimeError("down"), 3])
    _hold(world, 10.0, expected_runs=4)
    assert world.shares[0] == (0.0, 99.0)  # nothing known: the parent's count of runs at once, never all of R
    # out of reach, a run cannot see runs starting: it assumes the parent's count again
    assert [s for _, s in world.shares] == [99.0, 397.0 / 3, 99.0, 397.0 / 3]


@pytest.mark.parametrize("seen", [0, -1])
def test_a_count_that_misses_this_run_still_counts_it(seen: int) -> None:
    world = _World([seen])
    _hold(world, 3.0)
    assert world.shares == [(0.0, 399.0)]


def test_a_run_is_marked_as_sharing_before_its_first_count_and_unmarked_when_it_stops() -> None:
    """The others count a run only while it may send: not while it starts, nor while it writes its report."""
    world = _World([1])
    _hold(world, 5.0)
    assert world.marks == [(0.0, True), (5.0, False)]
    assert world.asked[0] == 0.0 and world.shares[0] == (0.0, 399.0)  # its first count sees itself


def test_a_run_prefect_cannot_mark_sends_nothing_until_it_can() -> None:
    """Prefect out of reach at the start: the others, once it answers, count only the marked runs and would not see
    this one. It waits, marks itself once Prefect is back, and takes its share from then on."""
    world = _World([ConnectionError("unreachable"), 2])
    world.mark_fails = True

    async def prefect_back() -> None:
        await world.sleep(3.0)
        world.mark_fails = False

    _hold(world, 10.0, expected_runs=2, meanwhile=prefect_back)
    assert world.marks == [(0.0, True), (2.0, True), (4.0, True), (10.0, False)]
    assert world.shares[0] == (4.0, share_each(400.0, 2))  # the parent's runs at once, from its mark on


def test_a_run_whose_mark_is_refused_while_prefect_counts_sends_only_once_marked() -> None:
    """The others count the marked runs and would not see this one: its share would come on top of theirs."""
    world = _World([2])
    world.marks_refused = 2
    _hold(world, 10.0)
    assert world.marks == [(0.0, True), (2.0, True), (4.0, True), (10.0, False)]  # tried again every poll
    assert world.shares[0] == (4.0, share_each(400.0, 2))  # counted from its mark on, sending 2.5 s later


@pytest.mark.timeout(30)  # the old behaviour waited for ever
def test_a_run_prefect_refuses_to_mark_for_good_stops_with_the_reason_instead_of_waiting_for_ever(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A credential that may read flow runs but not update them: the run stops before sending, saying why."""
    monkeypatch.setattr(rate_share, "MARK_GIVE_UP_S", 10.0)
    world = _World([2])
    world.marks_refused = 10**6
    with pytest.raises(SetupError, match="right to update flow runs"):
        _hold(world, 60.0)
    assert world.shares == []  # never counted, never sent
    assert world.marks == [(t, True) for t in (0.0, 2.0, 4.0, 6.0, 8.0)] + [(10.0, False)]  # stopped at 10 s


@pytest.mark.timeout(30)
@pytest.mark.parametrize("counts", [[2], [ConnectionError("unreachable")], [2, ConnectionError("a blip"), 2]])
def test_a_run_prefect_will_not_mark_stops_once_the_give_up_has_passed_on_the_clock(
        monkeypatch: pytest.MonkeyPatch, counts: list[int | Exception]) -> None:
    """Each mark unanswered (MARK_TIMEOUT_S apiece): the give-up is time, not polls, whatever the counts say."""
    monkeypatch.setattr(rate_share, "MARK_GIVE_UP_S", 30.0)
    world = _World(counts)
    world.mark_write_s = 10**6  # never reaches the server
    with pytest.raises(SetupError, match="did not tag this flow run"):
        _hold(world, 200.0)
    assert world.shares == [] and [t for t, _ in world.marks] == [0.0, 12.0, 24.0, 30.0]  # stopped at 30 s, mid-mark


@pytest.mark.parametrize("counts", [[2], [ConnectionError("unreachable")]])
def test_a_mark_written_but_unanswered_is_tried_again_and_taken_off_at_the_end(counts: list[int | Exception]) -> None:
    """The server wrote the tag but its answer was lost: taken for a refusal, the mark is asked again (the same tag,
    written twice) and taken off at the end, however the counts answer."""
    world = _World(counts)
    world.answers_lost = 1
    _hold(world, 8.0)
    assert world.marks == [(0.0, True), (2.0, True), (8.0, False)]
    assert world.shares[0][0] == 2.0 and not world.tagged


def test_a_run_stopped_before_its_mark_was_answered_takes_the_tag_off() -> None:
    """A run cancelled while its mark is on the way (written on the server, no answer yet) takes the tag off."""
    world = _World([1])
    world.mark_answer_s = 3.0

    async def go() -> None:
        held = share_of_rate("kyc-attach-rate:fin", 400.0, world.apply, poll_s=2.0, count=world.count,
                             mark=world.mark, sleep=world.sleep)
        task = asyncio.ensure_future(held.__aenter__())
        await world.run_until(2.0)
        assert world.tagged  # written, not yet answered
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    assert world.marks == [(0.0, True), (0.0, False)] and not world.tagged


def test_limiters_take_the_share_as_their_ceiling() -> None:
    limiters = EndpointLimiters(400.0)
    limiters.set_ceiling(100.0)
    assert limiters.ceiling == 100.0
    assert set(limiters.rates().values()) == {10.0}  # not yet cut: the slow start's first rate, under the share
    limiters.set_ceiling(5.0)
    assert set(limiters.rates().values()) == {5.0}  # a share under it bounds it
    limiters.set_ceiling(0.1)  # below the controllers' floor: the floor follows
    assert set(limiters.rates().values()) == {0.1}


@pytest.mark.parametrize(("total", "runs"), [(400.0, 4), (100.0, 4), (10.0, 4), (3.0, 4), (1.0, 1)])
def test_shares_and_the_request_each_run_holds_stay_within_the_rate(total: float, runs: int) -> None:
    share = share_each(total, runs)
    assert share > 0
    if total >= 2 * runs:
        assert runs * (share + 1) <= total + 1e-9  # a second's worth each, plus the one request in hand
    assert runs * share <= total


def _enter_then_cancel(world: _World, cancel_at: float, *, until: float = 60.0) -> dict[str, bool]:
    """Enter the share's block and cancel the task holding it at ``cancel_at`` (on the clock): whether the block
    was entered, and whether the cancellation came out of it."""
    seen = {"entered": False, "cancelled": False}

    async def hold() -> None:
        async with share_of_rate("kyc-attach-rate:fin", 400.0, world.apply, poll_s=2.0, start_margin_s=0.5,
                                 count=world.count, mark=world.mark, sleep=world.sleep):
            seen["entered"] = True
            await world.sleep(until)

    async def go() -> None:
        task = asyncio.ensure_future(hold())

        async def canceller() -> None:
            await world.sleep(cancel_at)
            task.cancel()

        other = asyncio.ensure_future(canceller())
        await world.run_until(until)
        await other
        if not task.done():  # the cancellation was lost: the block still runs
            task.cancel()
            await world.run_until(2 * until)
            await asyncio.gather(task, return_exceptions=True)
            return
        try:
            await task
        except asyncio.CancelledError:
            seen["cancelled"] = True

    asyncio.run(go())
    return seen


@pytest.mark.parametrize("cancel_at", [0.0, 1.0, 2.5, 3.0, 5.0])  # mark wait, retry sleep, start-up sleep, block
def test_a_run_cancelled_at_any_await_takes_its_tag_off_and_stops(cancel_at: float) -> None:
    world = _World([2])
    world.marks_refused = 1  # marked at 2 s: cancelled at 0 or 1 s it never was
    seen = _enter_then_cancel(world, cancel_at)
    assert seen["cancelled"] and not world.tagged and world.marks[-1] == (cancel_at, False)
    assert seen["entered"] == (cancel_at >= 4.5)


def test_a_run_cancelled_during_its_first_count_takes_its_tag_off_and_stops() -> None:
    world = _World([2])

    async def slow_count(tag: str) -> int:
        await world.sleep(0.3)
        return 2

    world.count = slow_count  # type: ignore[method-assign]
    seen = _enter_then_cancel(world, 0.1)
    assert seen["cancelled"] and not seen["entered"] and not world.tagged and world.shares == []


def test_a_run_cancelled_while_a_count_that_timed_out_is_torn_down_does_not_send() -> None:
    """A count not back within the margin is cancelled and awaited; a real client takes a moment to tear down
    (closing its connection). The run's own cancellation arriving meanwhile was swallowed by ``_cancel``'s
    ``suppress(CancelledError)``: the run went on, entered its block and sent, cancelled."""
    world = _World([2])

    async def count_slow_to_cancel(tag: str) -> int:
        try:
            await world.sleep(100.0)
        finally:
            await world.sleep(1.0)  # the teardown, after the cancel at 0.5 s
        return 2

    world.count = count_slow_to_cancel  # type: ignore[method-assign]
    seen = _enter_then_cancel(world, 1.0)  # timed out at 0.5 s, torn down until 1.5 s
    assert not seen["entered"]  # entered at 3.5 s, cancelled at 1 s
    assert seen["cancelled"] and not world.tagged


def test_a_count_raising_cancelled_error_mid_run_does_not_stop_the_counts() -> None:
    """A count that raises CancelledError of its own (a client's cancel scope, not this run cancelled) is no count,
    like any failure. It ended the follower: the run kept its share for the rest of the block, counting no more."""
    world = _World([1])
    answers: list[int | BaseException] = [1, asyncio.CancelledError(), 4]

    async def count(tag: str) -> int:
        world.asked.append(world.now)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    world.count = count  # type: ignore[method-assign]
    _hold(world, 10.0, expected_runs=4)
    assert world.shares == [(0.0, 399.0), (2.0, share_each(400.0, 4))]  # no count: the parent's runs at once
    assert world.asked[-1] >= 8.0  # still counting at the end


def test_a_mark_raising_cancelled_error_of_its_own_is_retried_like_a_refusal() -> None:
    """The mark's own CancelledError (this run not cancelled) came out of the block as if the run were cancelled."""
    world = _World([1])
    original = world.mark
    raised = []

    async def mark(tag: str, sharing: bool) -> None:
        if sharing and not raised:
            raised.append(world.now)
            raise asyncio.CancelledError()
        await original(tag, sharing)

    world.mark = mark  # type: ignore[method-assign]
    _hold(world, 10.0)
    assert raised == [0.0] and world.marks == [(2.0, True), (10.0, False)]


def test_an_unmark_that_hangs_is_given_up_after_the_mark_timeout() -> None:
    world = _World([1])
    original = world.mark
    ended = []

    async def mark(tag: str, sharing: bool) -> None:
        if not sharing:
            await world.sleep(10**6)
        await original(tag, sharing)

    async def hold() -> None:
        async with share_of_rate("kyc-attach-rate:fin", 400.0, world.apply, poll_s=2.0, count=world.count,
                                 mark=mark, sleep=world.sleep):
            await world.sleep(5.0 - world.now)
        ended.append(world.now)

    async def go() -> None:
        task = asyncio.ensure_future(hold())
        await world.run_until(100.0)
        await task

    asyncio.run(go())
    assert ended == [5.0 + rate_share.MARK_TIMEOUT_S]


class _Interrupted(BaseException):
    """Not an Exception: a KeyboardInterrupt, a SystemExit, an abort of the process."""


def test_a_mark_raising_a_base_exception_stops_the_run_unsent_and_takes_the_tag_off() -> None:
    world = _World([1])
    original = world.mark

    async def mark(tag: str, sharing: bool) -> None:
        await original(tag, sharing)
        if sharing:
            raise _Interrupted()

    world.mark = mark  # type: ignore[method-assign]
    with pytest.raises(_Interrupted):
        _hold(world, 10.0)
    assert world.shares == [] and world.marks == [(0.0, True), (0.0, False)] and not world.tagged


@pytest.mark.parametrize("seen", [0, -3])
def test_a_count_answering_zero_or_less_mid_run_counts_this_run(seen: int) -> None:
    world = _World([3, seen, 2])
    _hold(world, 10.0)
    assert [s for _, s in world.shares] == [share_each(400.0, 3), share_each(400.0, 1), share_each(400.0, 2)]
