"""Grouping hash slots into shards of about the same number of rows (pure)."""

from __future__ import annotations

from collections.abc import Sequence


def group_slots(counts: Sequence[int], target_rows: int) -> list[tuple[int, int]]:
    """Adjacent slots joined into ``(first, last)`` ranges of at least ``target_rows`` rows each.

    The last range takes whatever is left. Empty slots join a neighbour, so every slot is in
    exactly one range and the ranges depend only on the counts (the same manifest, the same shards).
    """
    ranges: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, n in enumerate(counts):
        total += n
        if total >= target_rows:
            ranges.append((start, i))
            start, total = i + 1, 0
    if start < len(counts):
        if total == 0 and ranges:
            first, _ = ranges.pop()
            ranges.append((first, len(counts) - 1))
        else:
            ranges.append((start, len(counts) - 1))
    return ranges
