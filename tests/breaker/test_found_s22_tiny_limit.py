"""Session 22: an absurdly small endpoint limit is accepted at start-up and crashes a shard run at its first share.

``KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS={"attach": 5e-324}`` passes the settings (gt=0, finite); the process builds its
limiters, and a fanned-out shard run's first share (``set_ceiling``) scales attach's ceiling to 0.0 (underflow):
``RateControl`` raises "need 0 < floor <= ceiling" inside the share's callback. Cosmetic (no one means that value),
but the refusal belongs at start-up, naming the variable. Fixed by the lead: the settings refuse endpoint limits under
0.01/s (``flows.settings.MIN_ENDPOINT_RPS``).
"""

from __future__ import annotations

import pytest

from connectors.errors import SetupError
from connectors.rate_limiter import EndpointLimiters
from flows.settings import MIN_ENDPOINT_RPS, load_settings


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
