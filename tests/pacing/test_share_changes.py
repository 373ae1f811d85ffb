"""A shard run's share of R changing under its limiters and controllers (fake clock): a larger share is climbed to
in seconds and reaches a request already waiting, a share under the floor and back keeps the rate found, and an
endpoint limit too small to share is refused at start-up."""

from __future__ import annotations

import asyncio

import pytest

from connectors.errors import SetupError
from connectors.rate_limiter import EndpointLimiters, SmoothLimiter
from flows.settings import MIN_ENDPOINT_RPS, load_settings
from tests.support.fake_clock import FakeClock
from transforms.rate_control import RateControl, RateController


def _cut_at_a_small_share(share: float) -> tuple[RateController, float]:
    """A controller run at ``share`` for a minute, cut once by a wall of 429s half way."""
    c = RateController(RateControl(ceiling=share, floor=min(0.5, share)))
    t = 0.0
    while t < 60.0:
        t += 1.0 / c.rate
        if 30.0 < t < 30.0 + 6.0 / c.rate:
            c.hear(t, 429)
        else:
            c.hear(t, 200)
    assert c.cuts >= 1
    return c, t


def test_a_cut_controller_given_a_much_larger_share_climbs_in_seconds() -> None:
    """32 shard runs at R = 10 share 0.3/s each; one 429 wall cuts a run. When the others end it gets R, and
    set_ceiling promises a climb 'along its cubic, as from a cut' (~1.5 s). It took ~28 s to reach 90 of 100/s
    (from a share of 2/s, ~5 s): the last runs of a fan-out crawl while the rate is theirs."""
    c, t = _cut_at_a_small_share(0.3)
    c.set_ceiling(100.0)
    start = t
    while c.rate < 90.0 and t < start + 60.0:
        t += 1.0 / c.rate
        c.hear(t, 200)
    assert t - start < 5.0


def test_a_raised_share_reaches_a_request_already_waiting() -> None:
    """A request waiting at a share of 1/s keeps waiting out its second after the share became 100/s: the first
    request of every run that gets a larger share waits out the old interval (5 s at 0.2/s). Real time."""

    async def go() -> float:
        limiter = SmoothLimiter(1.0)
        await limiter.acquire()  # the token it starts with
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.05)
        limiter.set_rate(100.0)
        return await waiting

    assert asyncio.run(go()) < 0.5


@pytest.mark.parametrize(("old", "new"), [(400.0, 400.0 / 11 * 3), (100.0, 100.0 / 11 * 3), (1000.0, 1000.0 / 63)])
def test_a_controller_at_its_ceiling_stays_at_the_new_one(old: float, new: float) -> None:
    ctl = RateController(RateControl(ceiling=old))
    t = 0.0
    while ctl.rate < old:  # ramped up to the ceiling on answers that got through
        t += 1.0 / ctl.rate
        ctl.hear(t, 200)
    assert ctl.set_ceiling(new) == pytest.approx(new)
    for _ in range(6):  # 429s that the whole client's share explains: not this endpoint's limit
        t += 0.005
        ctl.hear(t, 429, sent_at=t - 0.02, noise=0.5)
    assert ctl.cuts == 0


def _cut() -> tuple[EndpointLimiters, dict[str, float]]:
    clock = FakeClock()
    limiters = EndpointLimiters(100.0, endpoint_ceilings={"attach": 10.0}, clock=clock,
                                sleep=clock.sleep)
    for _ in range(40):
        clock.now += 0.1
        limiters.on_success("attach")
    for _ in range(6):  # a wall of 429s on attach, sending alone: the whole client's limit, as far as it can tell
        clock.now += 0.1
        limiters.on_throttle("attach", None, sent_at=clock.now - 0.02)
    return limiters, limiters.rates()


def test_a_share_under_the_floor_and_back_keeps_what_was_found() -> None:
    limiters, found = _cut()
    assert found["all"] < 50.0
    for share in (50.0, 0.5, 0.1, 100.0):
        limiters.set_ceiling(share)
    rates = limiters.rates()
    assert rates["all"] <= found["all"] + 0.1  # not scaled back up from the floor to 100
    assert rates["attach"] <= found["attach"] + 0.1


def test_a_share_under_the_floor_still_goes_at_the_floor() -> None:
    limiters, _ = _cut()
    limiters.set_ceiling(0.1)
    assert limiters.rates()["all"] == 0.1 and limiters.rates()["attach"] == 0.0  # 0.01/s, rounded
    assert limiters.limiters["attach"].rate == limiters.controllers["attach"].config.ceiling


def test_a_tiny_endpoint_limit_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS", '{"attach": 5e-324}')
    with pytest.raises(SetupError) as caught:
        load_settings()
    assert str(caught.value) == ("setting KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS: Input should be greater than or equal "
                                 "to 0.01")


def test_the_least_endpoint_limit_survives_a_small_share() -> None:
    limiters = EndpointLimiters(10.0, endpoint_ceilings={"attach": MIN_ENDPOINT_RPS})
    limiters.set_ceiling(0.5)  # a twentieth of the rate
    assert limiters.controllers["attach"].config.ceiling == pytest.approx(MIN_ENDPOINT_RPS / 20)
