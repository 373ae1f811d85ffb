"""Session 23: random 429s that start mid-run (not from 6244c15: the same on 6244c15^).

Virtual-time simulation through ``EndpointLimiters.acquire`` (``sim_s22``): a gateway bucket of 100/s holding 10,
look-ups asked at 15/s, attaches and uploads as fast as 4 and 16 workers go, answers 20 ms +-30% later, not told any
limit. From 15 s on, 10% of every endpoint's requests are refused at random. The noise is learned only from spells at
or under the last cut's rate, as the median of the last ten: until six spells have taught it, every few random 429s
are over the noise and cut. The whole client got 39-46 requests/s through for seven seconds (16-23 s), where the same
noise from the start holds 80-95/s (and 90/s is all the gateway lets through at 10% noise).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from connectors.rate_limiter import EndpointLimiters
from bench.support.gateway_sim import Bucket, VirtualClock, simulate


class _NoiseFrom(Mapping[str, float]):
    """10% random 429s on every endpoint from ``start`` on (read on the simulation's clock)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.clock: VirtualClock | None = None

    def __getitem__(self, endpoint: str) -> float:
        return 0.1 if self.clock is not None and self.clock() >= self.start else 0.0

    def __iter__(self) -> Iterator[str]:
        return iter(("upload", "attach", "customer"))

    def __len__(self) -> int:
        return 3


@pytest.mark.xfail(strict=True, reason=(
    "known gap (not from 6244c15): noise that starts mid-run is learned only after ~6 spells under the last cut; "
    "meanwhile every few random 429s cut, and the whole client falls to 39-46/s of 90 for 7 s"))
@pytest.mark.parametrize("seed", [0, 1])
def test_noise_starting_mid_run_does_not_halve_the_client_for_seconds(seed: int) -> None:
    noise = _NoiseFrom(15.0)

    def limiters(clock: VirtualClock) -> EndpointLimiters:
        noise.clock = clock
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    result = simulate(limiters, 30.0, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                      gateway=Bucket(100.0, 10.0), noise_on=noise, jitter=0.3, seed=seed)
    assert result.count(15.0, 24.0, ok=True) / 9.0 >= 70.0  # 6244c15 and 6244c15^: 54/s, 51/s (before 15 s: 100/s)
