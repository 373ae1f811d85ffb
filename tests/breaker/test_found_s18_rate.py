"""Breaker s18: rate control settings through a whole run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.e2e.helpers import DemoScenario, read_report
from tests.e2e.test_attach_flow import EXPECTED_REJECTS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.mark.timeout(180)
def test_a_rate_limit_below_half_a_request_a_second_runs(demo_scenario: Callable[..., DemoScenario]) -> None:
    """KYC_ATTACH_RATE_LIMIT_RPS accepts any value above 0 (settings: gt=0), e.g. 0.4 for an API that allows
    a request every 2.5 s. Found: the run dies with `ValueError: rate control: need 0 < floor <= ceiling`: the
    controller's fixed floor (0.5 requests/s) is above the configured ceiling. Expected: the run goes at 0.4/s. Fixed
    (connectors/rate_limiter.py): the floor is the ceiling when the ceiling is lower."""
    scenario = demo_scenario(customers=1, KYC_ATTACH_RATE_LIMIT_RPS="0.4")

    summary = scenario.run()

    valid = [r for r in read_report(summary) if r["s3_uri"].rsplit("/", 1)[-1] not in EXPECTED_REJECTS]
    assert {r["status"] for r in valid} == {"attached"}, Counter((r["status"], r["reason_code"]) for r in valid)
