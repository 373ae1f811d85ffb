"""The whole flow against a gateway that throttles as real ones do: a small burst, no Retry-After, attach tighter."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.support.scenario import EXPECTED_REJECTS, DemoScenario, read_report

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_harsh_gateway_not_told_its_limit_every_valid_row_attached_once(
    demo_scenario: Callable[..., DemoScenario],
) -> None:
    # 40 requests/s holding 4, attach 5/s holding 1, random 429s on top, never a Retry-After; the run is told
    # ten times the real limit, and one attempt per request: any 429 that spent an attempt would fail a row.
    faults = {
        "seed": 5,
        "rate_limit": [{"rps": 40, "burst": 4, "retry_after": False},
                       {"rps": 5, "burst": 1, "endpoints": ["attach"], "retry_after": False}],
        "random_429": {"share": 0.05},
        "latency": {"distribution": "fixed", "ms": 5},
    }
    scenario = demo_scenario(customers=12, faults=faults, KYC_ATTACH_RATE_LIMIT_RPS="400",
                             KYC_ATTACH_MAX_ATTEMPTS="1")

    summary = scenario.run()

    report = read_report(summary)
    valid = [r for r in report if r["s3_uri"].rsplit("/", 1)[-1] not in EXPECTED_REJECTS]
    assert {r["status"] for r in valid} == {"attached"}, Counter((r["status"], r["reason_code"]) for r in valid)
    record = scenario.record()
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}
    assert len(record["attachments"]) == 3 * len(scenario.world["customers"])
    assert record["responses"]["429"] > 0  # the gateway did throttle: the test is not vacuous
    assert summary["api"]["throttled_429"] == record["responses"]["429"]
    assert summary["api"]["share_429"] > 0 and summary["api"]["per_10s"]
