"""What a gateway bucket holding one request lets through, for a client pacing at a fixed rate with arrival jitter.

Run: `uv run python bench/bench_burst_one.py`

A model, not a measurement of the client: requests leave exactly 1/rate apart and arrive up to ``jitter`` later
(uniform); the gateway is a token bucket of ``limit``/s holding one request. It shows why a limit with no burst
(the bench's attach-only case) cannot be run at 90% of its rate once arrivals jitter by more than ~10 ms: under
the limit, what gets through is the rate sent; at or over it, any request arriving less than 1/limit after the one
before is refused and the bucket's refill is wasted, so what gets through falls to about half.
"""

from __future__ import annotations

import random

RATES = (8.5, 9.0, 9.5, 10.0, 10.5, 11.0, 12.0, 14.0, 20.0)


def through(rate: float, *, limit: float = 10.0, jitter_s: float, seconds: float = 200.0,
            seed: int = 1) -> tuple[float, float]:
    """Share of ``limit`` that gets through, and share of requests refused, pacing at ``rate``."""
    rng = random.Random(seed)
    arrivals = sorted(i / rate + rng.random() * jitter_s for i in range(int(rate * seconds)))
    tokens, stamp, passed = 1.0, 0.0, 0
    for at in arrivals:
        tokens, stamp = min(1.0, tokens + (at - stamp) * limit), at
        if tokens >= 1.0:
            tokens -= 1.0
            passed += 1
    return passed / seconds / limit, 1 - passed / len(arrivals)


def main() -> None:
    print("limit 10/s, bucket of one request; sent rate -> share of the limit through (share refused)")
    for jitter_ms in (5, 10, 20):
        cells = []
        for rate in RATES:
            got, refused = through(rate, jitter_s=jitter_ms / 1000)
            cells.append(f"{rate:4.1f}/s -> {got:4.0%} ({refused:3.0%})")
        print(f"jitter {jitter_ms:2d} ms: " + "  ".join(cells))
    print("best without 429s, limit L and jitter J: L / (1 + L*J) =",
          ", ".join(f"{1 / (1 + 10 * j / 1000):.0%} at {j} ms" for j in (5, 10, 20)))


if __name__ == "__main__":
    main()
