"""Session 22: fanned-out shard runs and an endpoint's told limit (``KYC_ATTACH_ENDPOINT_RATE_LIMITS_RPS``, 9513ce3).

``rate_share.share_each`` gives each of n runs (R - n) / n of the whole rate: each run's limiter holds one request in
hand, so in any second a run may send its share and one more, and n requests set aside keep every second at R or
under. 9513ce3 scales an endpoint's own limit by the same share and sets nothing aside: 4 runs told attach 10/s of a
rate of 100 get 2.4 attaches/s each and together sent 12 attaches in one second (8 runs: 16) while the
whole client stayed under 100. Setting one request per run aside (share - 1, half at least, as share_each does) keeps
every second at 10 or under, but against a gateway whose attach bucket holds one request it did not help: the runs'
attaches come at unrelated times, and 2 runs sent 4.0 attaches/s with 11-18% of them refused (scaled alone: 5.0/s,
9-11%), 4 runs 2.9/s with 26% (3.6-4.5/s, 25-33%). Not fixed: runs sharing an endpoint limit of one request's burst
need that endpoint's sends spaced across runs, not a share each.
Simulated on the real async path (``sim_s22``), four attach workers and sixteen upload workers per run.
"""

from __future__ import annotations

import pytest

from connectors.rate_limiter import EndpointLimiters
from connectors.rate_share import SHARED_BURST_S, share_each
from bench.support.gateway_sim import Bucket, Result, VirtualClock, simulate


def _shard_runs(n: int, seconds: float, *, gateway: bool, seed: int = 0) -> Result:
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        made = EndpointLimiters(100.0, endpoint_ceilings={"attach": 10.0}, burst_s=SHARED_BURST_S,
                                small_ahead=False, clock=clock, sleep=clock.sleep)
        made.set_ceiling(share_each(100.0, n))
        return made

    return simulate(limiters, seconds, workers={"upload": 16, "attach": 4}, jitter=0.3, seed=seed, runs=n,
                    gateway=Bucket(100.0, 10.0) if gateway else None,
                    endpoint_buckets={"attach": Bucket(10.0, 1.0)} if gateway else None)


@pytest.mark.xfail(strict=True, reason="known gap: an endpoint's told limit is split among shard runs without the "
                   "request each run holds in hand (share_each sets one aside per run for the whole rate)")
@pytest.mark.parametrize("runs", [4, 8])
def test_shard_runs_together_keep_an_endpoints_told_limit_over_any_second(runs: int) -> None:
    result = _shard_runs(runs, 5.0, gateway=False)
    assert result.max_window(1.0) <= 100
    assert result.max_window(1.0, endpoint="attach") <= 10  # 9513ce3: 12 (4 runs), 16 (8 runs)


@pytest.mark.xfail(strict=True, reason="known gap: shard runs sharing an attach bucket of one send at unrelated "
                   "times: 10-33% of attaches refused and under half the limit got through")
@pytest.mark.parametrize("runs", [2, 4])
def test_shard_runs_told_a_shared_attach_limit_keep_429s_few(runs: int) -> None:
    result = _shard_runs(runs, 20.0, gateway=True)
    assert result.share_429(10.0, 20.0, "attach") <= 0.05  # 9513ce3: 11% (2 runs), 25% (4 runs)
    assert result.count(10.0, 20.0, "attach", ok=True) / 10.0 >= 0.7 * 10.0  # 9513ce3: 5.0/s, 3.6/s
