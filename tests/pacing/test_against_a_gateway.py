"""What a run gets from a gateway it was told the limit of, or not, in virtual time (``run_case``):
the figures the end-to-end bench measures, held with a margin on three seeds each."""

from __future__ import annotations

import pytest

from bench.support.gateway_sim import Bucket, VirtualClock, run_case, simulate
from connectors.rate_limiter import EndpointLimiters

SEEDS = range(3)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rate", [100.0, 10.0])
def test_told_the_limit_a_run_gets_it_without_429s(rate: float, seed: int) -> None:
    outcome = run_case("harsh", rate, told=True, seed=seed)
    assert outcome.share_of_r >= 0.95 and outcome.share_429 <= 0.01, outcome


@pytest.mark.parametrize("seed", SEEDS)
def test_not_told_the_limit_a_run_finds_it_with_few_429s(seed: int) -> None:
    outcome = run_case("harsh", 100.0, told=False, seed=seed)
    assert outcome.share_of_r >= 0.90 and outcome.share_429 <= 0.05, outcome


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rate", [100.0, 10.0])
def test_told_an_attach_limit_attaches_go_at_it(rate: float, seed: int) -> None:
    outcome = run_case("attach", rate, told=True, seed=seed)
    assert outcome.share_of_r >= 0.90 and outcome.share_429 <= 0.01, outcome


@pytest.mark.parametrize("seed", SEEDS)
def test_an_attach_limit_not_told_is_found_and_kept_under(seed: int) -> None:
    outcome = run_case("attach", 100.0, told=False, seed=seed)
    assert outcome.share_of_r >= 0.5 and outcome.share_429 <= 0.08, outcome


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("told", [True, False])
def test_random_429s_do_not_drag_a_run_to_its_floor(told: bool, seed: int) -> None:
    outcome = run_case("noise", 100.0, told=told, seed=seed)
    assert outcome.share_of_r >= 0.3, outcome


def test_a_token_answer_seconds_before_the_work_does_not_drag_the_first_cut_to_the_floor() -> None:
    """A run asks for its token in its start-up checks, a second or more before the plan is ready: the idle time
    between is no rate, and a first cut from it landed at the floor (a blind run got half of R end to end)."""
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        made = EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)
        made.on_success("token")
        return made

    work = {e: (3.0, 30.0) for e in ("upload", "attach", "customer")}
    result = simulate(limiters, 30.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                      gateway=Bucket(100.0, 10), jitter=0.3, seed=0, active=work)
    assert result.count(8.0, 30.0, ok=True) / 22.0 >= 90.0
