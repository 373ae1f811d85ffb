"""The simple controller (botocore's adaptive mode): its signal, table, cubic, accepted rate and rate rules."""

from __future__ import annotations

import pytest

from transforms.accepted_rate import AcceptedRate
from transforms.cubic import cubic_rate
from transforms.pacing_signal import Signal, classify
from transforms.simple_pacing import TRANSITIONS, Action, Phase, SimpleController, SimplePacing


def steady(controller: SimpleController, *, per_s: float, seconds: float, start: float = 0.0) -> float:
    """``per_s`` accepted answers a second for ``seconds``; returns the time of the last."""
    now = start
    for i in range(int(per_s * seconds)):
        now = start + i / per_s
        controller.hear(now, Signal.OK)
    return now


def test_classify_reads_429_as_throttle_no_answer_as_silent_and_any_other_answer_as_ok() -> None:
    assert classify(429) is Signal.THROTTLE
    assert classify(None) is Signal.SILENT
    assert [classify(s) for s in (200, 201, 400, 409, 500, 503)] == [Signal.OK] * 6


def test_every_phase_and_signal_has_exactly_one_transition() -> None:
    assert set(TRANSITIONS) == {(p, s) for p in Phase for s in Signal}
    assert TRANSITIONS[(Phase.OPEN, Signal.THROTTLE)] == (Action.CUT, Phase.PACED)
    assert all(action is not Action.GROW for (phase, _), (action, _) in TRANSITIONS.items() if phase is Phase.OPEN)


def test_open_phase_holds_the_ceiling_until_the_first_429() -> None:
    controller = SimpleController(SimplePacing(ceiling=100.0))
    steady(controller, per_s=50, seconds=3)
    assert controller.rate == 100.0 and controller.phase is Phase.OPEN


def test_a_throttle_cuts_to_beta_times_the_lower_of_accepted_and_rate() -> None:
    controller = SimpleController(SimplePacing(ceiling=1000.0))
    now = steady(controller, per_s=100, seconds=2)
    assert controller.hear(now + 0.001, Signal.THROTTLE) == pytest.approx(0.7 * 100, rel=0.03)
    assert controller.phase is Phase.PACED
    # now the rate (70/s) is lower than what got through: the next cut is from the rate
    assert controller.hear(now + 0.002, Signal.THROTTLE) == pytest.approx(0.7 * 0.7 * 100, rel=0.03)


def test_a_throttle_before_anything_was_measured_cuts_from_the_rate() -> None:
    controller = SimpleController(SimplePacing(ceiling=100.0))
    controller.hear(0.01, Signal.OK)
    assert controller.hear(0.02, Signal.THROTTLE) == pytest.approx(70.0)


def test_success_grows_back_along_the_cubic_to_the_rate_of_the_last_cut() -> None:
    config = SimplePacing(ceiling=1000.0, growth_cap=1000.0)  # growth uncapped: the cubic alone
    controller = SimpleController(config)
    now = steady(controller, per_s=100, seconds=2)
    controller.hear(now, Signal.THROTTLE)
    w_max = controller.rate / config.beta
    k = (w_max * (1 - config.beta) / config.scale) ** (1 / 3)
    assert controller.hear(now + k / 2, Signal.OK) < w_max
    assert controller.hear(now + k, Signal.OK) == pytest.approx(w_max)
    assert controller.hear(now + k + 2, Signal.OK) > w_max


def test_growth_is_capped_at_twice_the_accepted_rate() -> None:
    controller = SimpleController(SimplePacing(ceiling=1000.0))
    now = steady(controller, per_s=100, seconds=2)
    controller.hear(now, Signal.THROTTLE)
    # few answers come now (an endpoint with little to send): 5/s for 10 s, long past the cubic's climb back
    now = steady(controller, per_s=5, seconds=10, start=now + 0.2)
    assert controller.rate <= 2 * 5 * 1.05


def test_no_answer_leaves_the_rate_alone() -> None:
    controller = SimpleController(SimplePacing(ceiling=100.0))
    controller.hear(0.0, Signal.THROTTLE)
    before = controller.rate
    assert controller.hear(5.0, Signal.SILENT) == before


def test_the_rate_stays_between_floor_and_ceiling() -> None:
    controller = SimpleController(SimplePacing(ceiling=20.0, floor=0.5))
    for i in range(50):
        controller.hear(i * 0.001, Signal.THROTTLE)
    assert controller.rate == 0.5
    steady(controller, per_s=40, seconds=30, start=1.0)
    assert controller.rate == 20.0


def test_a_new_ceiling_is_the_rate_while_open_and_a_cap_once_paced() -> None:
    open_ = SimpleController(SimplePacing(ceiling=100.0))
    assert open_.set_ceiling(50.0) == 50.0 and open_.set_ceiling(80.0) == 80.0
    paced = SimpleController(SimplePacing(ceiling=100.0))
    paced.hear(0.0, Signal.THROTTLE)  # 70/s
    assert paced.set_ceiling(40.0) == 40.0
    assert paced.set_ceiling(100.0) == 40.0  # a paced rate grows back by the cubic, not by a share


def test_a_tiny_share_lowers_the_floor_and_a_larger_one_restores_it() -> None:
    controller = SimpleController(SimplePacing(ceiling=100.0, floor=0.5))
    controller.hear(0.0, Signal.THROTTLE)
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
    assert rate.note(0.0, accepted=True) is None  # no bucket closed yet
    for i in range(1, 50):  # 50 answers in the first bucket, half of them refused
        rate.note(i * 0.01, accepted=i % 2 == 0)
    assert rate.note(0.5, accepted=True) == pytest.approx(25 / 0.5)
    for i in range(1, 50):
        rate.note(0.5 + i * 0.01, accepted=True)
    assert rate.note(1.0, accepted=True) == pytest.approx(0.8 * 100 + 0.2 * 50)


def test_accepted_rate_starts_at_the_first_answer_not_at_its_making() -> None:
    rate = AcceptedRate(smooth=1.0, bucket_s=0.5)
    for i in range(50):  # the first answer 10 s after the estimator was made
        rate.note(10.0 + i * 0.01, accepted=True)
    assert rate.note(10.5, accepted=True) == pytest.approx(100.0)


@pytest.mark.parametrize("field", ["beta", "scale", "growth_cap", "smooth", "bucket_s", "floor"])
def test_a_tunable_out_of_range_is_refused_naming_the_rule(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SimplePacing(ceiling=10.0, **{field: 0.0 if field != "beta" else 1.5})
