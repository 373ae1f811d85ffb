from hypothesis import given
from hypothesis import strategies as st

from transforms.shard_plan import group_slots


def test_small_manifest_is_one_shard() -> None:
    assert group_slots([1, 0, 2, 0], 100) == [(0, 3)]


def test_ranges_reach_the_target() -> None:
    assert group_slots([5, 5, 5, 5, 1], 10) == [(0, 1), (2, 3), (4, 4)]


@given(st.lists(st.integers(0, 50), min_size=1, max_size=300), st.integers(1, 200))
def test_every_slot_in_exactly_one_range(counts: list[int], target: int) -> None:
    ranges = group_slots(counts, target)
    covered = [b for first, last in ranges for b in range(first, last + 1)]
    assert covered == list(range(len(counts)))
    assert all(sum(counts[first : last + 1]) >= target for first, last in ranges[:-1])
