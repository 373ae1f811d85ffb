from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from transforms.retry import Decision, classify, classify_attach, next_delay, parse_retry_after


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Decision.success),
        (201, Decision.success),
        (400, Decision.terminal),
        (401, Decision.reauth),
        (403, Decision.terminal),
        (404, Decision.terminal),
        (408, Decision.retry),
        (409, Decision.wait_conflict),
        (422, Decision.terminal),
        (429, Decision.throttled),
        (500, Decision.retry),
        (501, Decision.terminal),
        (502, Decision.retry),
        (503, Decision.retry),
        (504, Decision.retry),
    ],
)
def test_classify_status(status: int, expected: Decision) -> None:
    assert classify(status) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Decision.success),
        (400, Decision.terminal),
        (401, Decision.reauth),
        (409, Decision.wait_conflict),
        (429, Decision.throttled),
        (303, Decision.unknown_outcome),
        (307, Decision.unknown_outcome),
        (500, Decision.unknown_outcome),
        (502, Decision.unknown_outcome),
        (503, Decision.unknown_outcome),
        (504, Decision.unknown_outcome),
    ],
)
def test_classify_attach_status(status: int, expected: Decision) -> None:
    assert classify_attach(status) == expected


@pytest.mark.parametrize("error", ["connect", "read_timeout", "dropped", None])
@pytest.mark.parametrize("sent", [True, False])
def test_lost_response_of_a_repeatable_call_is_retried(error: str | None, sent: bool) -> None:
    assert classify(None, error=error, request_sent=sent) == Decision.retry


@pytest.mark.parametrize(
    ("error", "sent", "expected"),
    [
        ("connect", True, Decision.retry),
        ("connect", False, Decision.retry),
        ("read_timeout", True, Decision.unknown_outcome),
        ("read_timeout", False, Decision.retry),
        ("dropped", True, Decision.unknown_outcome),
        ("dropped", False, Decision.retry),
        (None, True, Decision.unknown_outcome),
    ],
)
def test_lost_attach_response(error: str | None, sent: bool, expected: Decision) -> None:
    assert classify_attach(None, error=error, request_sent=sent) == expected


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 10, 100, 10_000])
def test_next_delay_bounds(attempt: int) -> None:
    rng = random.Random(attempt)
    for _ in range(200):
        d = next_delay(attempt, None, base=0.5, cap=30.0, rng=rng)
        assert 0.0 <= d <= min(30.0, 0.5 * 2 ** min(attempt - 1, 62))


def test_next_delay_retry_after_is_floor_and_capped() -> None:
    rng = random.Random(0)
    assert all(next_delay(1, 7.0, rng=rng) >= 7.0 for _ in range(50))
    assert next_delay(1, 10_000.0, rng=rng) == 120.0
    assert next_delay(1, float("nan"), rng=rng) <= 0.5
    assert next_delay(1, -3, rng=rng) <= 0.5


def test_next_delay_deterministic_with_seed() -> None:
    assert next_delay(4, None, rng=random.Random(1)) == next_delay(4, None, rng=random.Random(1))


NOW = datetime(2025, 12, 28, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        (" 1.5 ", 1.5),
        ("-1", None),
        ("soon", None),
        ("Sun, 28 Dec 2025 10:00:30 GMT", 30.0),
        ("Sun, 28 Dec 2025 09:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_naive_now() -> None:
    assert parse_retry_after("Sun, 28 Dec 2025 10:00:10 GMT", NOW.replace(tzinfo=None)) == 10.0


def test_conflict_waits_grow_and_stay_within_the_budget() -> None:
    from transforms.retry import conflict_delay

    rng = random.Random(5)
    # the ceiling of each wait doubles (full jitter under it), up to the cap
    highs = [max(conflict_delay(n, 1e9, rng=rng) for _ in range(400)) for n in range(1, 8)]
    assert highs[:5] == sorted(highs[:5]) and highs[0] <= 0.25 < highs[2]  # 0.25, 0.5, 1, 2, 4: growing
    assert all(4.0 < h <= 8.0 for h in highs[5:])  # then capped at 8 s
    assert all(conflict_delay(7, 0.3, rng=rng) <= 0.3 for _ in range(50))
    assert conflict_delay(3, -1.0, rng=rng) == 0.0
