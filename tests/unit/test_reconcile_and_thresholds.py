import pytest

from transforms.codes import Reason
from transforms.exactly_once import Evidence
from transforms.reconcile import PartyStatus, evidence, party_statuses
from transforms.thresholds import FailureBudget

SENT = 1_000.0
INIT, R = "INITIATED", "REVIEWING"


@pytest.mark.parametrize(
    ("before", "now", "expected"),
    [
        (True, {"a": (R, SENT + 1), "b": (R, SENT + 2)}, Evidence.applied),
        (True, {"a": (R, None), "b": (R, None)}, Evidence.applied),  # the API gives no time: the move counts
        (True, {"a": (INIT, SENT - 5), "b": (INIT, SENT - 5)}, Evidence.untouched),
        (True, {"a": (R, SENT + 1), "b": (INIT, SENT - 5)}, Evidence.none),  # the parties disagree
        (True, {"a": (R, SENT - 1), "b": (R, SENT + 1)}, Evidence.none),  # a moved before the send: not ours
        (False, {"a": (R, SENT + 1), "b": (R, SENT + 1)}, Evidence.none),  # past INITIATED before: says nothing
        (True, {"a": (R, SENT + 1)}, Evidence.none),  # party b vanished from the customer
    ],
)
def test_evidence_is_positive_only(before: bool, now: dict[str, tuple[str, float | None]],
                                   expected: Evidence) -> None:
    statuses = {p: PartyStatus(s, at) for p, (s, at) in now.items()}
    assert evidence(before, SENT, statuses, ["a", "b"]) is expected


def test_party_statuses_reads_verification_and_lowercases_ids() -> None:
    customer = {"associated_parties": [
        {"id": "AB-1", "verification": {"status": "INITIATED", "updated_at": "2026-01-02T03:04:05.250Z"}},
        {"id": "c"},
    ]}
    assert party_statuses(customer) == {"ab-1": PartyStatus("INITIATED", 1767323045.25), "c": PartyStatus("", None)}


SENT_MID_SECOND = 1_000.6  # the send's second is [1000, 1001)


@pytest.mark.parametrize(
    ("updated_at", "whole_second", "expected"),
    [
        (1_000.0, True, Evidence.applied),  # moved within the send's second, stamped to the second
        (1_001.0, True, Evidence.applied),
        (999.0, True, Evidence.none),  # the second before the send: not this send's move
        (1_000.0, False, Evidence.none),  # a fraction-bearing stamp before the send stays before it
    ],
)
def test_whole_second_updated_at_in_the_send_second_counts_as_after_it(updated_at: float, whole_second: bool,
                                                                        expected: Evidence) -> None:
    statuses = {"a": PartyStatus(R, updated_at, whole_second)}
    assert evidence(True, SENT_MID_SECOND, statuses, ["a"]) is expected


@pytest.mark.parametrize(
    ("updated_at", "whole_second", "expected"),
    [
        (1_000.0, True, Evidence.none),  # the attach that held the customer may have moved it in this second
        (1_001.0, True, Evidence.applied),  # a later second: after the send, whoever held the customer before
        (1_000.7, False, Evidence.applied),  # a fraction-bearing stamp is compared with the send itself
    ],
)
def test_after_a_409_wait_a_whole_second_stamp_in_the_resend_second_is_not_the_resends(
        updated_at: float, whole_second: bool, expected: Evidence) -> None:
    statuses = {"a": PartyStatus(R, updated_at, whole_second)}
    assert evidence(True, SENT_MID_SECOND, statuses, ["a"], after_conflict=True) is expected


def test_party_statuses_tells_whole_second_stamps_from_fractional_ones() -> None:
    customer = {"associated_parties": [
        {"id": "a", "verification": {"status": "REVIEWING", "updated_at": "2026-01-02T03:04:05Z"}},
        {"id": "b", "verification": {"status": "REVIEWING", "updated_at": "2026-01-02T03:04:05.000Z"}},
        {"id": "c", "verification": {"status": "REVIEWING", "updated_at": "2026-01-02T03:04:05+00:00"}},
    ]}
    statuses = party_statuses(customer)
    assert [statuses[p].whole_second for p in "abc"] == [True, False, True]


def test_budget_trips_only_after_min_attempts_and_above_ratio() -> None:
    budget = FailureBudget(max_ratio=0.5, min_attempts=4)
    for _ in range(3):
        budget.note(ok=False)
    assert not budget.tripped  # too few attempts to judge
    budget.note(ok=True)
    assert budget.tripped  # 3 of 4 failed
    assert "3 of 4" in budget.reason()


def test_budget_half_failed_is_not_above_the_ratio() -> None:
    budget = FailureBudget(max_ratio=0.5, min_attempts=2)
    budget.note(ok=False)
    budget.note(ok=True)
    assert not budget.tripped


def test_breaker_opens_after_a_run_of_failures_and_backs_off_further() -> None:
    from transforms.breaker import CircuitBreaker

    breaker = CircuitBreaker(threshold=3, base_pause_s=5, max_pause_s=12)
    assert [breaker.record(server_failure=True, now=100) for _ in range(3)] == [None, None, 105]
    assert [breaker.record(server_failure=True, now=200) for _ in range(3)] == [None, None, 210]
    assert [breaker.record(server_failure=True, now=300) for _ in range(3)] == [None, None, 312]  # capped
    assert breaker.record(server_failure=False, now=400) is None
    assert [breaker.record(server_failure=True, now=500) for _ in range(3)] == [None, None, 505]  # reset
    assert breaker.opened == 4


def test_breaker_success_in_between_keeps_it_closed() -> None:
    from transforms.breaker import CircuitBreaker

    breaker = CircuitBreaker(threshold=2)
    outcomes = [breaker.record(server_failure=f, now=0) for f in (True, False, True, False, True)]
    assert outcomes == [None] * 5 and breaker.opened == 0


def test_a_ledger_refusal_after_another_halt_is_still_known_so_the_run_does_not_compact() -> None:
    budget = FailureBudget()
    budget.halt("stopped early: the run's lease was lost", Reason.lease_lost)
    assert not budget.store_refused
    budget.halt("stopped early: the ledger's store refused a write", Reason.ledger_unavailable)
    assert budget.stop_code == "lease_lost" and budget.store_refused  # the first cause for the rows, the refusal kept


def test_budget_halted_trips_at_once_with_its_own_reason_and_code() -> None:
    budget = FailureBudget(min_attempts=1000)
    budget.halt("stopped early: the ledger's store refused a write", Reason.ledger_unavailable)
    budget.halt("a second cause", Reason.lease_lost)

    assert budget.tripped
    assert budget.reason() == "stopped early: the ledger's store refused a write"
    assert budget.stop_code == "ledger_unavailable"
