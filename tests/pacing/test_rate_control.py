"""The rate controller of one endpoint or of the whole client: its signals, table, cubic, accepted rate and rules."""

from __future__ import annotations

from itertools import pairwise

import pytest

from transforms.accepted_rate import FIRST_SPAN_S, AcceptedRate
from transforms.cubic import cubic_rate
from transforms.pacing_signal import Signal, classify
from transforms.rate_control import (
    FIRST_RATE,
    HOLD_S,
    MOST_KEEP,
    RAMP,
    TOUCH_KEEP,
    TRANSITIONS,
    Action,
    Phase,
    RateControl,
    RateController,
)

OK, TOO_MANY = 200, 429


def steady(controller: RateController, *, per_s: float, seconds: float, start: float = 0.0,
           every_429: int = 0) -> float:
    """``per_s`` answers a second for ``seconds`` (every ``every_429``-th a 429); returns the time of the last."""
    now = start
    for i in range(int(per_s * seconds)):
        now = start + i / per_s
        controller.hear(now, TOO_MANY if every_429 and i % every_429 == every_429 - 1 else OK, sent_at=now - 0.02)
    return now


def cut_once(controller: RateController, now: float) -> float:
    """429s in a row, each sent after the one before came back, until one cuts. Returns the time of the cut."""
    cuts = controller.cuts
    for i in range(20):
        controller.hear(now + 0.001 * i, TOO_MANY, sent_at=now + 0.001 * i - 0.0005)
        if controller.cuts > cuts:
            return now + 0.001 * i
    raise AssertionError("20 429s in a row did not cut")


def test_classify_reads_429_as_throttle_an_earlier_requests_429_as_echo_and_any_other_answer_as_ok() -> None:
    assert classify(429, sent_at=5.0, cut_at=None) is Signal.THROTTLE
    assert classify(429, sent_at=5.0, cut_at=4.0) is Signal.THROTTLE
    assert classify(429, sent_at=3.0, cut_at=4.0) is Signal.ECHO
    assert classify(429, sent_at=None, cut_at=4.0) is Signal.THROTTLE
    assert [classify(s, sent_at=1.0, cut_at=4.0) for s in (200, 201, 400, 409, 500, 503)] == [Signal.OK] * 6


def test_every_phase_and_signal_has_exactly_one_transition() -> None:
    assert set(TRANSITIONS) == {(p, s) for p in Phase for s in Signal}
    assert TRANSITIONS[(Phase.OPEN, Signal.THROTTLE)] == (Action.CUT, Phase.PACED)
    assert all(action is not Action.GROW for (phase, _), (action, _) in TRANSITIONS.items() if phase is Phase.OPEN)
    assert all(action is not Action.CUT for (_, signal), (action, _) in TRANSITIONS.items()
               if signal is not Signal.THROTTLE)


def test_a_run_starts_slow_and_ramps_by_what_gets_through() -> None:
    controller = RateController(RateControl(ceiling=100.0))
    assert controller.rate == FIRST_RATE
    steady(controller, per_s=5, seconds=3)  # few answers (little to send): the ramp follows them, not the ceiling
    assert FIRST_RATE < controller.rate <= RAMP / FIRST_SPAN_S < 100.0 and controller.phase is Phase.OPEN
    steady(controller, per_s=50, seconds=3, start=3.1)
    assert controller.rate == 100.0 and controller.phase is Phase.OPEN


def test_a_ceiling_under_the_first_rate_is_the_rate_from_the_start() -> None:
    assert RateController(RateControl(ceiling=FIRST_RATE / 4)).rate == FIRST_RATE / 4


def test_a_cut_under_the_ceiling_keeps_beta_of_what_got_through() -> None:
    controller = RateController(RateControl(ceiling=1000.0))
    now = cut_once(controller, steady(controller, per_s=100, seconds=2) + 0.01)
    now = steady(controller, per_s=300, seconds=3, start=now + 0.01)  # 300/s get through, paced under the ceiling
    assert controller.rate < 1000.0
    cut_once(controller, now + 0.01)
    assert controller.rate == pytest.approx(0.7 * 300, rel=0.03)
    assert controller.phase is Phase.PACED and controller.cuts == 2


def test_a_cut_at_the_ceiling_is_from_the_rate_sent() -> None:
    """A touch of a limit the configuration states: requests paced at a bucket of one's limit reach it a few ms apart
    and half are refused, so what got through reads half the limit; a cut from it landed far under it again and
    again."""
    controller = RateController(RateControl(ceiling=100.0))
    now = steady(controller, per_s=50, seconds=2)  # sent at 100/s, half of it answered yet
    assert controller.rate == 100.0
    cut_once(controller, now + 0.01)
    assert controller.rate == pytest.approx(0.7 * TOUCH_KEEP * 100.0)


def test_a_touch_of_the_ceiling_is_held_under_it_a_minute() -> None:
    controller = RateController(RateControl(ceiling=10.0))
    touched = cut_once(controller, steady(controller, per_s=10, seconds=2) + 0.01)  # paced at the ceiling: a touch
    now = steady(controller, per_s=TOUCH_KEEP * 10, seconds=60, start=touched + 0.1)  # a minute, every answer 200
    assert controller.rate == pytest.approx(TOUCH_KEEP * 10.0)  # climbed back under the ceiling, and stayed
    steady(controller, per_s=TOUCH_KEEP * 10, seconds=10, start=now + 0.1)
    assert controller.rate == 10.0  # then probed the ceiling again: a brief 429 storm does not hold a run under it
    now = cut_once(controller, steady(controller, per_s=10, seconds=1, start=now + 10.2) + 0.01)  # a touch again
    now = cut_once(controller, steady(controller, per_s=controller.rate, seconds=5, start=now + 0.1) + 0.01)
    steady(controller, per_s=controller.rate, seconds=20, start=now + 0.1)  # a cut under it ends the hold
    assert controller.rate == 10.0


def test_a_cut_halves_the_rate_at_most() -> None:
    """429s come back before the answers that got through: just after a flood, what got through reads far too low."""
    controller = RateController(RateControl(ceiling=1000.0))
    now = steady(controller, per_s=100, seconds=2)
    before = controller.rate
    assert RAMP * 100 * 0.9 < before < 1000.0
    cut_once(controller, now + 0.01)
    assert controller.rate == pytest.approx(before / 2)


def test_a_cut_before_anything_was_measured_is_from_the_rate() -> None:
    controller = RateController(RateControl(ceiling=100.0))
    cut_once(controller, 0.01)
    assert controller.rate == pytest.approx(0.7 * FIRST_RATE)


def test_echoes_of_one_overshoot_cut_once() -> None:
    controller = RateController(RateControl(ceiling=1000.0))
    now = steady(controller, per_s=100, seconds=2)
    cut_at = cut_once(controller, now + 0.01)
    after_cut = controller.rate
    for i in range(20):  # the 429s of requests let go before the cut come back after it
        assert controller.hear(cut_at + 0.001 * (i + 1), TOO_MANY, sent_at=cut_at - 0.005) is Signal.ECHO
    assert controller.rate == after_cut and controller.cuts == 1
    # 429s of requests let go after the cut are no echoes: a limit still not answered cuts again
    cut_once(controller, cut_at + 0.03)
    assert controller.cuts == 2 and controller.rate < after_cut


def test_a_lone_429_does_not_cut_and_two_in_a_row_do() -> None:
    controller = RateController(RateControl(ceiling=100.0))
    now = steady(controller, per_s=100, seconds=0.3)
    before = controller.rate
    assert controller.hear(now + 0.01, TOO_MANY, sent_at=now) is Signal.NOISE
    assert controller.rate == before and controller.phase is Phase.OPEN
    fresh = RateController(RateControl(ceiling=100.0))
    assert fresh.hear(0.01, TOO_MANY) is Signal.NOISE
    assert fresh.hear(0.02, TOO_MANY) is Signal.THROTTLE
    assert fresh.phase is Phase.PACED


def test_random_429s_do_not_drag_the_rate_to_the_floor() -> None:
    controller = RateController(RateControl(ceiling=100.0))
    steady(controller, per_s=100, seconds=30, every_429=10)  # 10% of the answers 429, whatever the rate
    assert controller.noise == pytest.approx(0.1, abs=0.03)
    assert controller.rate >= 50.0


def test_a_limit_is_not_learned_as_noise() -> None:
    """Spells over the limit have many 429s, the spell after a cut has none: the noise is the lowest, 0."""
    controller = RateController(RateControl(ceiling=100.0))
    now = 0.0
    for _ in range(6):  # a second at 30% 429s, then a second with none, again and again
        now = steady(controller, per_s=100, seconds=1, start=now + 0.01, every_429=3)
        now = steady(controller, per_s=100, seconds=1, start=now + 0.01)
    assert controller.noise == 0.0


def test_an_explained_429_does_not_cut() -> None:
    controller = RateController(RateControl(ceiling=100.0))
    for i in range(10):
        assert controller.hear(0.01 * i, TOO_MANY, noise=1.0) is Signal.NOISE
    assert controller.rate == FIRST_RATE and controller.phase is Phase.OPEN


def test_the_rate_grows_back_along_the_cubic_in_the_same_time_at_any_rate() -> None:
    back_after = []
    for per_s in (40.0, 400.0):
        config = RateControl(ceiling=10 * per_s, growth_cap=1000.0)  # growth uncapped: the cubic alone
        controller = RateController(config)
        now = cut_once(controller, steady(controller, per_s=per_s, seconds=2) + 0.01)
        w_max = controller.rate / config.beta
        k = (w_max * (1 - config.beta) / (config.scale * w_max)) ** (1 / 3)
        controller.hear(now + k / 2, OK)
        assert controller.rate < w_max
        controller.hear(now + k, OK)
        assert controller.rate == pytest.approx(w_max)
        controller.hear(now + k + 2, OK)
        assert controller.rate > w_max
        back_after.append(k)
    assert back_after[0] == pytest.approx(back_after[1])


def against_a_limit(controller: RateController, limit: float, seconds: float) -> list[float]:
    """Requests at the controller's rate to a gateway letting ``limit`` a second through and refusing the rest evenly,
    each answered 20 ms after it left; returns the times of the cuts."""
    now, credit, cuts = 0.0, 1.0, []
    while now < seconds:
        credit = min(1.0, credit + limit / controller.rate)
        ok = credit >= 1.0 - 1e-9
        credit -= ok
        before = controller.cuts
        controller.hear(now, OK if ok else TOO_MANY, sent_at=now - 0.02)
        if controller.cuts > before:
            cuts.append(now)
        now += 1.0 / controller.rate
    return cuts


def test_a_limit_found_twice_is_held_before_the_next_probe_past_it() -> None:
    config = RateControl(ceiling=500.0)
    controller = RateController(config)
    cuts = against_a_limit(controller, 50.0, seconds=60)
    back = ((1 - config.beta) / config.scale) ** (1 / 3)  # the cubic's climb back to the rate cut from
    # the slow start's flood and the first cuts under it find the limit by the fourth cut
    gaps = [b - a for a, b in pairwise(cuts[3:])]
    assert len(gaps) >= 3  # still probing: a limit that rises is found
    assert min(gaps) >= back + HOLD_S  # between probes: the climb back, then HOLD_S at the limit


def test_a_cut_is_from_the_most_that_got_through_since_the_last_cut() -> None:
    config = RateControl(ceiling=1000.0)
    controller = RateController(config)
    now = cut_once(controller, steady(controller, per_s=100, seconds=2) + 0.01)
    found = controller.rate / config.beta
    now = at_own_rate(controller, now + 0.01, seconds=3)  # back at the cut's rate and past it: all gets through
    assert found < controller.rate < config.ceiling
    now = at_own_rate(controller, now + 0.01, seconds=1, answered=0.5)  # past a bucket of one: half gets through
    cut_once(controller, now + 0.01)
    assert controller.rate >= config.beta * MOST_KEEP * found  # what got through passed found; now half of it does


def share_refused(controller: RateController, limit: float, seconds: float) -> float:
    """Requests at the controller's rate to a gateway letting ``limit`` a second through and refusing the rest evenly;
    returns the share of 429s after the first fifth of ``seconds``."""
    now, credit, sent, refused = 0.0, 1.0, 0, 0
    while now < seconds:
        credit = min(1.0, credit + limit / controller.rate)
        ok = credit >= 1.0 - 1e-9
        credit -= ok
        controller.hear(now, OK if ok else TOO_MANY, sent_at=now - 0.02)
        if now >= seconds / 5:
            sent, refused = sent + 1, refused + (not ok)
        now += 1.0 / controller.rate
    return refused / sent


@pytest.mark.parametrize("limit", [1.0, 3.0])
def test_at_a_few_requests_a_second_the_most_that_got_through_costs_no_429s(limit: float) -> None:
    """One or two answers a bucket: the measure jumps, and the most of it reads far over the limit."""
    def refused(most_keep: float) -> float:
        return share_refused(RateController(RateControl(ceiling=10 * limit, most_keep=most_keep)), limit, 600)

    # cut from the most that got through at any rate, 26-40% of requests were refused at 1-3/s, against 14-27%
    assert refused(MOST_KEEP) <= refused(0.0) + 0.01


def at_own_rate(controller: RateController, start: float, *, seconds: float, answered: float = 1.0) -> float:
    """Requests at the controller's rate for ``seconds``, ``answered`` of them answered 200 (the rest not yet back);
    returns the time of the last answer."""
    now, owed = start, 0.0
    while now < start + seconds:
        now += 1 / controller.rate
        owed += answered
        if owed >= 1:
            owed -= 1
            controller.hear(now, OK, sent_at=now - 0.02)
    return now


def test_growth_is_capped_by_what_gets_through_and_the_cap_does_not_cut() -> None:
    controller = RateController(RateControl(ceiling=120.0))
    now = cut_once(controller, steady(controller, per_s=100, seconds=2) + 0.01)
    # few answers come now (an endpoint with little to send): 5/s for 10 s, long past the cubic's climb back
    steady(controller, per_s=5, seconds=10, start=now + 0.2)
    assert 2 * 5 < controller.rate < 0.9 * 120  # not grown to the ceiling, nor cut to twice what got through


def test_the_rate_stays_between_floor_and_ceiling() -> None:
    controller = RateController(RateControl(ceiling=20.0, floor=0.5))
    for i in range(50):
        controller.hear(i * 0.001, TOO_MANY)
    assert controller.rate == 0.5
    steady(controller, per_s=40, seconds=30, start=1.0)
    assert controller.rate == 20.0


def test_a_new_ceiling_bounds_the_slow_start_and_scales_a_paced_rate() -> None:
    open_ = RateController(RateControl(ceiling=100.0))
    now = steady(open_, per_s=50, seconds=2)  # ramped to the ceiling
    assert open_.set_ceiling(50.0) == 50.0 and open_.set_ceiling(80.0) == 50.0  # raised, it ramps up to it again
    steady(open_, per_s=40, seconds=1, start=now + 0.01)
    assert open_.rate == 80.0
    paced = RateController(RateControl(ceiling=100.0))
    cut_once(paced, steady(paced, per_s=100, seconds=2) + 0.01)  # a touch of the ceiling: to 0.7 x 95/s
    found = 0.7 * TOUCH_KEEP * 100
    assert paced.set_ceiling(40.0) == pytest.approx(0.4 * found)  # a share of the whole rate: the rate found, shared
    assert paced.set_ceiling(0.01) == 0.01  # under the floor: the share is the rate
    assert paced.set_ceiling(100.0) == pytest.approx(found)  # and back: what was found, not the floor scaled up


def test_a_tiny_share_lowers_the_floor_and_a_larger_one_restores_it() -> None:
    controller = RateController(RateControl(ceiling=100.0, floor=0.5))
    cut_once(controller, 0.0)
    assert controller.set_ceiling(0.2) == 0.2
    assert controller.config.floor == 0.2
    controller.set_ceiling(100.0)
    assert controller.config.floor == 0.5


def test_cubic_rate_starts_at_beta_times_w_max_and_is_back_after_k_seconds() -> None:
    assert cubic_rate(0.0, 100.0, beta=0.7, scale=0.4) == pytest.approx(70.0)
    k = (100.0 * 0.3 / 0.4) ** (1 / 3)
    assert cubic_rate(k, 100.0, beta=0.7, scale=0.4) == pytest.approx(100.0)
    assert cubic_rate(k + 1, 100.0, beta=0.7, scale=0.4) == pytest.approx(100.4)


def test_accepted_rate_counts_accepted_answers_per_bucket_smoothed() -> None:
    rate = AcceptedRate(smooth=0.8, bucket_s=0.5)
    rate.note(0.0, accepted=True)
    for i in range(1, 50):  # 50 answers in the first bucket, half of them refused
        rate.note(i * 0.01, accepted=i % 2 == 0)
    assert rate.note(0.5, accepted=True) == pytest.approx(25 / 0.5)
    for i in range(1, 50):
        rate.note(0.5 + i * 0.01, accepted=True)
    assert rate.note(1.0, accepted=True) == pytest.approx(0.8 * 100 + 0.2 * 50)


def test_before_a_bucket_closes_the_accepted_rate_is_what_got_through_since_the_first_answer() -> None:
    rate = AcceptedRate(smooth=0.8, bucket_s=0.5)
    assert rate.note(0.1, accepted=False) is None  # nothing got through: no measure
    assert rate.note(0.1, accepted=True) == pytest.approx(1 / FIRST_SPAN_S)  # one, in no time: over the least span
    assert rate.note(0.2, accepted=True) == pytest.approx(2 / 0.1)
    assert rate.note(0.3, accepted=False) == pytest.approx(2 / 0.2)


def test_accepted_rate_starts_at_the_first_answer_not_at_its_making() -> None:
    rate = AcceptedRate(smooth=1.0, bucket_s=0.5)
    for i in range(50):  # the first answer 10 s after the estimator was made
        rate.note(10.0 + i * 0.01, accepted=True)
    assert rate.note(10.5, accepted=True) == pytest.approx(100.0)


@pytest.mark.parametrize("field", ["beta", "scale", "growth_cap", "smooth", "bucket_s", "floor", "spell_s", "spells",
                                   "hold_s", "most_keep"])
def test_a_tunable_out_of_range_is_refused_naming_the_rule(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RateControl(ceiling=10.0, **{field: {"beta": 1.5, "hold_s": -1, "most_keep": 2}.get(field, 0)})
