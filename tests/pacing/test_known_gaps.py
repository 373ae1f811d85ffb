"""Pacing gaps the controller does not close, each pinned by a strict xfail: the test fails today, and the day it
passes the xfail turns red so that the gap is struck from this list. What a user sees, gap by gap:

- A shard run whose worker died (OOM, kill -9, a lost node) stays RUNNING on the Prefect server and keeps a share of
  the rate: the next run of that rate name, alone, goes at R / 2 (under R, never over it), until the zombie
  automation (deployments/zombie-automation.yaml) marks the dead run Crashed.
- Uploads that follow a spell of attaches alone start at attach's own limit and take seconds to climb back.
- A limit that drops under 10% random 429s is learned as 25% noise: the run stays at its old rate with a quarter of
  its requests answered 429.
- Customer look-ups at a few a second take the slow start to the ceiling: the uploads that follow meet the gateway's
  limit as if there were no slow start (33 429s in their first two seconds).
- Told a ceiling 1000 times the gateway's limit, a run spends ~450 429s (19% of 20 s) finding it.
- Against a bucket of one at 6/s (or 3/s) a run settles at 62% of the limit with a quarter of its requests refused.
- A client sending a few requests a second under 10% random 429s can be cut to half its demand for seconds.
- With uploads answered a second after they leave, 6.6-9.9% of requests are answered 429 on some seeds (5% is the
  aim).
- With an attach-only limit not told, a rare seed has the whole client learn its own limit's 429s as noise: 20% of
  all requests answered 429.
- Shard runs told an endpoint's limit together exceed it in some seconds (12 attaches in a second against 10 with 4
  runs), and runs sharing an attach bucket of one see 10-33% of attaches refused.
- Attaches waiting for their own limit hold whole-client tokens taken before a drop of the whole client's rate: 15
  requests in 2 s against 5/s.
- Against a bucket of five not told, or at 100 ms answers, the overshoot after a cut is learned as noise: 12-22% 429s.
- Random 429s that start mid-run halve the whole client for ~7 s before they are learned as noise.
- Random 429s on one endpoint only hold that endpoint at 15-22/s of its 27/s demand.
- 429s with `Retry-After` under the noise margin never cut the whole client's rate: each costs a second of uploads
  (46 uploads/s of 100).
- A gateway bucket of a second's worth hides the overshoot: with attach's own bucket of 5-10 the client settles at up
  to twice the gateway's rate with 41-50% refused.
- Under 2% stray 429s a limit that doubles is not found within 30 s in 3 seeds of 12.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import uuid
from collections.abc import Iterator, Mapping

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Running

from bench.support.gateway_sim import Bucket, Result, VirtualClock, simulate
from connectors.rate_limiter import EndpointLimiters
from connectors.rate_share import SHARED_BURST_S, rate_tag, share_each, share_of_rate
from tests.pacing.simulations import (
    attach_limit_not_told,
    controller_with_jittered_answers,
    found_after_rise,
    refused_share,
    sends_against_a_bucket,
    sent_per_second_under_random_429s,
    share_429_with_slow_uploads,
)
from tests.support.fake_clock import FakeClock
from tests.support.rate_answers import answer_controller, answer_limiters, simulate_controller
from transforms.rate_control import RateControl, RateController


@flow
def _a_shard() -> None:
    """Stands for the shard flow: only its runs' tags and states matter here."""


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.xfail(strict=True, reason="a shard run whose worker died (OOM, kill -9, a lost node) stays RUNNING "
                   "on the Prefect server, and every later run of this rate name counts it until Prefect's zombie "
                   "detection marks it Crashed")
def test_a_shard_run_whose_worker_died_does_not_keep_a_share() -> None:
    """A shard run left RUNNING by a worker that died holds a share for ever: the next night's run, alone, gets
    R / 2 (R / (n + 1) with n such runs). Under R, not over it, but silently and for good."""
    tag = rate_tag(f"zombie-{uuid.uuid4().hex[:8]}")
    shares: list[float] = []

    async def go() -> None:
        async with get_client() as client:
            await client.create_flow_run(_a_shard, tags=[tag], state=Running())  # its worker died long ago
            await client.create_flow_run(_a_shard, tags=[tag], state=Running())  # this run
        async with share_of_rate(tag, 100.0, shares.append, poll_s=3.0, start_margin_s=2.0):
            pass

    asyncio.run(go())
    assert shares == [share_each(100.0, 1)]  # alone: the whole rate, less the one request it holds


@pytest.mark.xfail(strict=True, reason="an endpoint sending alone cannot tell its own limit from the "
                   "client's; the whole client's controller answers it, and the endpoints that come after inherit "
                   "that rate and climb back over seconds")
def test_uploads_after_attaches_alone_are_not_held_at_attachs_limit() -> None:
    """2 s of attaches alone against a bucket of one at 10/s: with no other endpoint answering, the whole client's
    share holds attach's own 429s, and the whole client is cut to ~5/s. The uploads that follow (no limit of their
    own) went 5-6/s for 2 s, 12/s at 4 s, 54/s at 7 s and 100/s after 9 s."""
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, clock=clock)
    t, tokens, stamp = 0.0, 1.0, 0.0
    while t < 2.0:
        clock.now = t
        tokens, stamp = min(1.0, tokens + (t - stamp) * 10.0), t
        if tokens >= 1.0:
            tokens -= 1.0
            limiters.on_success("attach")
        else:
            limiters.on_throttle("attach", None, sent_at=t - 0.02)
        t += 1.0 / min(limiters.limiters["attach"].rate, limiters.overall.rate)
    start, uploads = t, 0
    while t < start + 3.0:
        clock.now = t
        limiters.on_success("upload")
        uploads += 1
        t += 1.0 / min(limiters.overall.rate, limiters.limiters["upload"].rate)
    assert uploads / 3.0 >= 50.0


def _told_run_with_a_limit_drop(seed: int, *, seconds: float = 40.0, noise: float = 0.10,
                                drop_at: float = 15.0) -> tuple[float, float, float]:
    """Told 100/s; the gateway allows 100/s (bucket of 10) until ``drop_at``, then 75/s (another client came).

    Returns (successes/s and 429 share from drop_at + 5 s to the end, the rate at the end).
    """
    rng = random.Random(seed)
    ctl = RateController(RateControl(ceiling=100.0), now=0.0)
    t = stamp = 0.0
    tokens = 10.0
    pending: list[tuple[float, bool, float]] = []
    sent = ok = 0
    while t < seconds:
        t += 1.0 / ctl.rate
        limit = 100.0 if t < drop_at else 75.0
        answer_controller(pending, t, ctl)
        tokens, stamp = min(limit / 10, tokens + (t - stamp) * limit), t
        throttled = tokens < 1.0 or rng.random() < noise
        if not throttled:
            tokens -= 1.0
        if t >= drop_at + 5:
            sent += 1
            ok += not throttled
        pending.append((t + 0.02, throttled, t))
    return ok / (seconds - drop_at - 5), 1.0 - ok / sent, ctl.rate


@pytest.mark.xfail(strict=True, reason="seconds at or under the last cut's rate teach the noise even when "
                   "a lower limit makes them over it; a limit that drops under 10% random 429s is learned as 25% noise")
@pytest.mark.parametrize("seed", range(2))
def test_a_limit_that_drops_under_random_429s_is_followed(seed: int) -> None:
    """The rate stays at 100/s (the ceiling) against 75/s for good, 25% of requests answered 429 (10% noise): the
    seconds after the drop, at the rate of the last cut, teach the noise."""
    _, share, rate = _told_run_with_a_limit_drop(seed)
    assert rate <= 0.9 * 100.0
    assert share <= 0.18


def _look_ups_then_uploads(ceiling: float, look_ups_for: float = 5.0, seconds: float = 8.0) -> tuple[float, int]:
    """Returns (the whole client's rate when uploads start, 429s in the two seconds after)."""
    clock = FakeClock()
    limiters = EndpointLimiters(ceiling, clock=clock)
    tokens, stamp, t = 10.0, 0.0, 0.0
    pending: list[tuple[float, str, bool, float]] = []
    rate_at_switch = 0.0
    refused = 0
    while t < seconds:
        endpoint = "customer" if t < look_ups_for else "upload"
        gap = 1.0 / limiters.overall.rate
        if endpoint == "customer":
            gap = max(gap, 1.0 / 20.0)
        elif not rate_at_switch:
            rate_at_switch = limiters.overall.rate
        t += gap
        answer_limiters(pending, t, limiters, clock)
        clock.now = t
        tokens, stamp = min(10.0, tokens + (t - stamp) * 100.0), t
        throttled = tokens < 1.0
        if not throttled:
            tokens -= 1.0
        refused += throttled and look_ups_for <= t < look_ups_for + 2.0
        heapq.heappush(pending, (t + 0.02, endpoint, throttled, t))
    return rate_at_switch, refused


@pytest.mark.xfail(strict=True, reason="the slow start grows per success, not per rate used; look-ups at "
                   "20/s take it to the ceiling before the uploads come")
def test_look_ups_at_a_few_a_second_do_not_take_the_slow_start_to_the_ceiling() -> None:
    rate, refused = _look_ups_then_uploads(1000.0)
    assert rate <= 4 * 20.0  # today: 825/s
    assert refused <= 20  # today: 33


@pytest.mark.xfail(strict=True, reason="from a ceiling 1000x the limit the slow start begins 125x over it "
                   "and halving cuts a round trip apart cost ~450 429s (19% of a 20 s run)")
def test_a_ceiling_a_thousand_times_the_limit_costs_few_429s() -> None:
    rate, share = controller_with_jittered_answers(100.0, burst=10.0, ceiling=100_000.0, seconds=20.0, seed=0)
    assert rate >= 0.9 * 100.0
    assert share <= 0.05


@pytest.mark.xfail(strict=True, reason="below ~8/s the rate overshoots a bucket of one while a touch's "
                   "evidence gathers (20 answers take 3 s), the touch cut keeps 0.97 of the rate sent, which is over "
                   "the limit, and the cliff (half of the requests refused) then halves it: 62% of the limit, 24% 429s")
@pytest.mark.parametrize("ceiling", [20.0, 100.0])
def test_a_bucket_of_one_at_six_a_second_is_followed(ceiling: float) -> None:
    """Every run against 6/s settles at 3.7/s with 24% of its requests refused; limits of 8/s and more hold 86-94%
    of the limit with 4-15% refused."""
    rate, share_429, _ = simulate_controller(6.0, burst=1.0, ceiling=ceiling, seconds=30)
    assert rate >= 0.8 * 6.0
    assert share_429 <= 0.15


@pytest.mark.xfail(strict=True, reason="random 429s at a few requests a second cut a client to half its demand for "
                   "seconds")
@pytest.mark.parametrize("seed", [12])
def test_random_429s_at_a_few_requests_a_second_do_not_hold_a_client_under_its_demand(seed: int) -> None:
    assert sent_per_second_under_random_429s(seed) >= 0.8 * 30.0


@pytest.mark.xfail(strict=True, reason=(
    "with uploads answered a second later, the rate climbs past a limit for a second before it hears of it: "
    "6.6-9.9% of requests answered 429 (seeds 1, 3, 5, 7 of 0-7 over 5%)"))
@pytest.mark.parametrize("seed", [3])
def test_uploads_answered_a_second_later_keep_429s_few_on_every_seed(seed: int) -> None:
    assert share_429_with_slow_uploads(seed) <= 0.05


@pytest.mark.xfail(strict=True, reason=(
    "the whole client's controller learns its own limit's 429s as noise and climbs to 114/s against 100/s; the "
    "uploads' 429s, routed to their own controller, are within twice the whole client's share there, so neither "
    "cuts: 20% of all requests answered 429"))
@pytest.mark.parametrize("seed", [19])
def test_an_attach_limit_not_told_keeps_429s_few_with_jitter_on_every_seed(seed: int) -> None:
    result = attach_limit_not_told(seed)
    assert result.share_429(15.0, 30.0) <= 0.05
    assert result.share_429(15.0, 30.0, "attach") <= 0.25


def _shard_runs(n: int, seconds: float, *, gateway: bool, seed: int = 0) -> Result:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        made = EndpointLimiters(100.0, endpoint_ceilings={"attach": 10.0}, burst_s=SHARED_BURST_S,
                                small_ahead=False, clock=clock, sleep=clock.sleep)
        made.set_ceiling(share_each(100.0, n))
        return made

    return simulate(limiters, seconds, workers={"upload": 16, "attach": 4}, jitter=0.3, seed=seed, runs=n,
                    gateway=Bucket(100.0, 10.0) if gateway else None,
                    endpoint_buckets={"attach": Bucket(10.0, 1.0)} if gateway else None)


@pytest.mark.xfail(strict=True, reason="an endpoint's told limit is split among shard runs without the "
                   "request each run holds in hand (share_each sets one aside per run for the whole rate)")
@pytest.mark.parametrize("runs", [4, 8])
def test_shard_runs_together_keep_an_endpoints_told_limit_over_any_second(runs: int) -> None:
    result = _shard_runs(runs, 5.0, gateway=False)
    assert result.max_window(1.0) <= 100
    assert result.max_window(1.0, endpoint="attach") <= 10  # today: 12 (4 runs), 16 (8 runs)


@pytest.mark.xfail(strict=True, reason="shard runs sharing an attach bucket of one send at unrelated "
                   "times: 10-33% of attaches refused and under half the limit got through")
@pytest.mark.parametrize("runs", [2, 4])
def test_shard_runs_told_a_shared_attach_limit_keep_429s_few(runs: int) -> None:
    result = _shard_runs(runs, 20.0, gateway=True)
    assert result.share_429(10.0, 20.0, "attach") <= 0.05  # today: 11% (2 runs), 25% (4 runs)
    assert result.count(10.0, 20.0, "attach", ok=True) / 10.0 >= 0.7 * 10.0  # today: 5.0/s, 3.6/s


def _drop(limiters: EndpointLimiters) -> None:
    limiters.overall.set_rate(limiters.overall_control.set_ceiling(5.0, 0.5))


@pytest.mark.xfail(strict=True, reason="small requests hold whole-client tokens taken before a drop of its "
                   "rate and leave on them after it: 15 requests in 2 s against 5/s")
def test_a_drop_of_the_whole_clients_rate_holds_while_attaches_wait() -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(100.0, endpoint_ceilings={"attach": 2.0}, start_share=1.0, clock=clock,
                                sleep=clock.sleep)

    result = simulate(limiters, 8.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 10.0},
                      jitter=0.3, events={3.0: _drop})
    assert result.max_window(2.0, start=3.0) <= 5 * 2 + 1  # today: 15


@pytest.mark.xfail(strict=True, reason=(
    "the seconds of an overshoot after a cut to just over the limit teach the whole "
    "client's controller ~10% noise, and it then climbs to twice the limit every ~5 s, cut only at 40% 429s"))
def test_a_bucket_of_five_not_told_keeps_429s_few() -> None:
    shares = [refused_share(sends_against_a_bucket(10.0, 5.0, 30.0, seed), 10.0, 30.0) for seed in range(4)]
    assert max(shares) <= 0.10  # today: 21-22%


@pytest.mark.xfail(strict=True, reason=(
    "answers in flight at a cut that succeed count as successes since it, so "
    "at 100 ms latency the descent takes cliff cuts of 18%, the last cut's rate lands over the limit and the spells "
    "under it teach 7-13% noise: 12-17% 429s in 8 of 32 runs"))
@pytest.mark.parametrize("seed", [7, 10])
def test_a_descent_at_a_long_latency_does_not_learn_its_overshoot_as_noise(seed: int) -> None:
    sends = sends_against_a_bucket(50.0, 5.0, 30.0, seed, latency=0.1)
    assert refused_share(sends, 10.0, 30.0) <= 0.05  # today: 14%, 12%


class _NoiseFrom(Mapping[str, float]):
    """10% random 429s on every endpoint from ``start`` on (read on the simulation's clock)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.clock: VirtualClock | None = None

    def __getitem__(self, endpoint: str) -> float:
        return 0.1 if self.clock is not None and self.clock() >= self.start else 0.0

    def __iter__(self) -> Iterator[str]:
        return iter(("upload", "attach", "customer"))

    def __len__(self) -> int:
        return 3


@pytest.mark.xfail(strict=True, reason=(
    "noise that starts mid-run is learned only after ~6 spells under the last cut; "
    "meanwhile every few random 429s cut, and the whole client falls to 39-46/s of 90 for 7 s"))
@pytest.mark.parametrize("seed", [0, 1])
def test_noise_starting_mid_run_does_not_halve_the_client_for_seconds(seed: int) -> None:
    noise = _NoiseFrom(15.0)

    def limiters(clock: VirtualClock) -> EndpointLimiters:
        noise.clock = clock
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                      gateway=Bucket(100.0, 10.0), noise_on=noise, jitter=0.3, seed=seed)
    assert result.count(15.0, 24.0, ok=True) / 9.0 >= 70.0  # today: 54/s, 51/s (before 15 s: 100/s)


@pytest.mark.xfail(strict=True, reason=(
    "an endpoint's noise capped at the whole client's cuts it again and again "
    "on random 429s only it gets (attaches or look-ups 15-22/s of 27/s)"))
@pytest.mark.parametrize(("endpoint", "seed"), [("attach", 1), ("attach", 3), ("customer", 1), ("customer", 3)])
def test_random_429s_on_one_endpoint_do_not_hold_it_under_its_demand(endpoint: str, seed: int) -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 8, endpoint: 4}, demand={"upload": 60.0, endpoint: 30.0},
                      noise_on={endpoint: 0.1}, jitter=0.3, seed=seed)
    assert result.count(5.0, 30.0, endpoint, ok=True) / 25.0 >= 24.0  # today: 14.7 / 21.7


@pytest.mark.xfail(strict=True, reason=(
    "at a few requests/s four 429s take seconds and the rate reaches twice the limit "
    "before a cut; 32% of requests refused against a bucket of one at 3/s"))
def test_a_slow_limit_not_told_keeps_429s_few() -> None:
    assert refused_share(sends_against_a_bucket(3.0, 1.0, 30.0, 0), 10.0, 30.0) <= 0.10  # today: 32%


@pytest.mark.xfail(strict=True, reason=(
    "429s with Retry-After under the noise margin never cut the whole client's rate; "
    "every 429 then costs a second of uploads (46/s of 100)"))
def test_retry_after_on_a_global_limit_does_not_halve_the_uploads() -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 16}, gateway=Bucket(100.0, 10.0), retry_after=1.0,
                      jitter=0.3, seed=0)
    assert result.count(10.0, 30.0, "upload", ok=True) / 20.0 >= 80.0  # today: 46/s


@pytest.mark.xfail(strict=True, reason=(
    "a gateway bucket of a second's worth hides the whole client's overshoot and, with "
    "attach's own bucket of 5-10, the client settles at up to twice the gateway's rate with 41-50% refused"))
@pytest.mark.parametrize(("attach_burst", "seed"), [(5.0, 5), (10.0, 2)])
def test_a_gateway_holding_a_second_keeps_429s_few(attach_burst: float, seed: int) -> None:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    r = simulate(limiters, 40.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                 gateway=Bucket(100.0, 100.0), endpoint_buckets={"attach": Bucket(10.0, attach_burst)}, jitter=0.3,
                 seed=seed)
    assert r.share_429(10.0, 40.0) <= 0.10  # today: 50%, 41%


@pytest.mark.xfail(strict=True, reason=(
    "under 2% stray 429s each stray at the plateau renews the hold, and a limit that doubles is not found within "
    "30 s in 3 of 12 seeds"))
def test_a_limit_that_rises_under_more_stray_429s_is_found() -> None:
    found = [found_after_rise(seed, strays=0.02) for seed in range(12)]
    assert sum(f <= 15.0 for f in found) >= 10  # today: 6
