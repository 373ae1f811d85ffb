"""What recording report.html's counters costs: per API request and per settled batch, next to doing nothing.

Prints nanoseconds per event for ``Timeline.request`` and ``Timeline.rows_settled`` and, for scale, the CPU one
API request costs the client (~1 ms at 200 req/s on the project's machine).

    uv run python bench/bench_timeline.py
"""

from __future__ import annotations

import random
import time

from transforms.run_timeline import Timeline


def per_event_ns(n: int = 200_000) -> tuple[float, float, float]:
    rng = random.Random(1)
    statuses = [429 if rng.random() < 0.05 else 200 for _ in range(n)]
    elapsed = [rng.uniform(0.005, 0.5) for _ in range(n)]
    t0 = 1_800_000_000.0
    stamps = [t0 + i / 400 for i in range(n)]  # 400 req/s: one second holds 400 events

    started = time.perf_counter_ns()
    for i in range(n):  # the baseline: the same loop doing nothing
        _ = statuses[i], elapsed[i], stamps[i]
    baseline = (time.perf_counter_ns() - started) / n

    tl = Timeline()
    started = time.perf_counter_ns()
    for i in range(n):
        tl.request("attach", statuses[i], elapsed[i], stamps[i])
    request = (time.perf_counter_ns() - started) / n - baseline

    started = time.perf_counter_ns()
    for i in range(n):
        tl.rows_settled(3, stamps[i])
    rows = (time.perf_counter_ns() - started) / n - baseline
    return baseline, request, rows


def main() -> None:
    baseline, request, rows = per_event_ns()
    print(f"loop alone           {baseline:8.0f} ns/event (baseline, subtracted below)")
    print(f"Timeline.request     {request:8.0f} ns/event  = {request / 1e6:.4%} of ~1 ms CPU per API request")
    print(f"Timeline.rows_settled {rows:7.0f} ns/event")


if __name__ == "__main__":
    main()
