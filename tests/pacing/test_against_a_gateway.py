"""What a run gets from a gateway it was told the limit of, or not, in virtual time (``run_case``):
the figures the end-to-end bench measures, held with a margin on three seeds each. Requests reach the gateway up
to 5 ms apart, so a bucket of one (R = 10, or an attach-only limit) refuses some of a run told its limit: those
figures are lower, and the gap is in test_known_gaps.py."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from bench.support.gateway_sim import Bucket, VirtualClock, run_case, simulate
from connectors.rate_limiter import EndpointLimiters

SEEDS = range(3)


class Held(NamedTuple):
    """A gateway case of ``run_case`` and the figures a run holds in it, on every seed."""

    case: str
    rate: float
    told: bool
    share_of_r_at_least: float
    share_429_at_most: float | None = None


HELD = {
    "told_the_limit_a_run_gets_it_without_429s_at_100": Held("harsh", 100.0, True, 0.95, 0.01),
    "told_a_bucket_of_one_a_run_gets_most_of_it_at_10": Held("harsh", 10.0, True, 0.75, 0.12),
    "not_told_the_limit_a_run_finds_it_with_few_429s": Held("harsh", 100.0, False, 0.95, 0.04),
    "told_an_attach_limit_attaches_go_near_it_at_100": Held("attach", 100.0, True, 0.75, 0.02),
    "told_an_attach_limit_attaches_go_near_it_at_10": Held("attach", 10.0, True, 0.75, 0.12),
    "an_attach_limit_not_told_is_found_and_kept_under": Held("attach", 100.0, False, 0.7, 0.06),
    "random_429s_do_not_drag_a_told_run_to_its_floor": Held("noise", 100.0, True, 0.5),
    "random_429s_do_not_drag_a_blind_run_to_its_floor": Held("noise", 100.0, False, 0.25),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("held", HELD.values(), ids=HELD.keys())
def test_a_run_against_a_gateway_holds_its_share_of_r_and_of_429s(held: Held, seed: int) -> None:
    outcome = run_case(held.case, held.rate, told=held.told, seed=seed)
    assert outcome.share_of_r >= held.share_of_r_at_least, outcome
    if held.share_429_at_most is not None:
        assert outcome.share_429 <= held.share_429_at_most, outcome


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
