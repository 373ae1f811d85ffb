"""Session 21 (the lead, on the way): a bucket of one at 6 requests/s, met by a client with no jitter at all.

Pure: one controller against the gateway of ``_simulate`` (tests/unit/test_rate_control.py).
"""

from __future__ import annotations

import pytest

from tests.unit.test_rate_control import _simulate


@pytest.mark.xfail(strict=True, reason="known gap: below ~8/s the rate overshoots a bucket of one while a touch's "
                   "evidence gathers (20 answers take 3 s), the touch cut keeps 0.97 of the rate sent, which is over "
                   "the limit, and the cliff (half of the requests refused) then halves it: 62% of the limit, 24% 429s")
@pytest.mark.parametrize("ceiling", [20.0, 100.0])
def test_a_bucket_of_one_at_six_a_second_is_followed(ceiling: float) -> None:
    # Found by a sweep of 72 limits/ceilings/latencies: every run against 6/s settled at 3.7/s with 24% of its
    # requests refused, on session 20's code as on session 21's; 8/s and more held 86-94% with 4-15%.
    rate, share_429, _ = _simulate(6.0, burst=1.0, ceiling=ceiling, seconds=30)
    assert rate >= 0.8 * 6.0
    assert share_429 <= 0.15
