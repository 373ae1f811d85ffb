"""Attach not told its limit, in virtual time, over many seeds: the sweep behind the pacing figures of
docs/benchmarks.md.

Run: `uv run python bench/bench_attach_jitter.py` (seeds 0-19 and 20-59; a few seconds)
     `uv run python bench/bench_attach_jitter.py --seeds 0 20`

The setup of ``tests/pacing/test_endpoint_limits.py``'s attach limit not told, through the real
``EndpointLimiters.acquire`` (``bench/support/gateway_sim.simulate``): a gateway of 100/s holding 10 for the whole
client, attaches also through a bucket of one at 10/s, answers 20 ms +-30% later, look-ups at 15/s, uploads and
attaches as fast as 16 and 4 workers go, ceiling 1000/s (not told any limit). Printed per range of seeds, over
seconds 15-30: the mean and least attaches/s that got through, the median and worst share of attaches answered 429,
the worst share of all requests.
A test checks behaviour on one seed each; this prints how the figures spread.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support.gateway_sim import Bucket, VirtualClock, simulate
from connectors.rate_limiter import EndpointLimiters

FROM, TO = 15.0, 30.0


def one(seed: int) -> tuple[float, float, float]:
    """(attaches/s, attach 429 share, 429 share of all requests) over seconds FROM-TO of one seed."""
    def limiters(clock: VirtualClock) -> EndpointLimiters:
        return EndpointLimiters(1000.0, clock=clock, sleep=clock.sleep)

    r = simulate(limiters, TO, workers={"upload": 16, "attach": 4, "customer": 4}, demand={"customer": 15.0},
                 gateway=Bucket(100.0, 10.0), endpoint_buckets={"attach": Bucket(10.0, 1.0)}, jitter=0.3, seed=seed)
    return r.count(FROM, TO, "attach", ok=True) / (TO - FROM), r.share_429(FROM, TO, "attach"), r.share_429(FROM, TO)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 20, 60],
                   help="range bounds: 0 20 60 prints seeds 0-19, then 20-59")
    bounds = p.parse_args().seeds
    print("seeds      attaches/s mean  least  attach 429s median  worst  all 429s worst")
    for lo, hi in itertools.pairwise(bounds):
        runs = [one(seed) for seed in range(lo, hi)]
        print(f"{lo:>3}-{hi - 1:<3}  {statistics.mean(r[0] for r in runs):>18.2f} {min(r[0] for r in runs):>6.1f}"
              f"  {statistics.median(r[1] for r in runs):>18.0%} {max(r[1] for r in runs):>6.0%}"
              f"  {max(r[2] for r in runs):>14.1%}")


if __name__ == "__main__":
    main()
