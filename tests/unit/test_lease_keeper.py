"""A run that loses its lease stops sending: its budget halts with the ``lease_lost`` reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

from connectors.objects import ObjectStore
from connectors.run_lease import LeaseTerms, RunLease
from flows.lease_keeper import LeaseWatch, keep_lease
from transforms.codes import Reason
from transforms.thresholds import FailureBudget


def test_a_member_whose_lease_was_taken_halts_its_budget_at_the_next_renewal(tmp_path: Path) -> None:
    terms = LeaseTerms(root=str(tmp_path), lease_id="one.x", run_id="one", stale_after_s=0.5)
    member = RunLease(ObjectStore(None), terms)
    member.acquire({"0a"})
    (tmp_path / "_lease" / "partitions" / "0a.json").write_text(
        '{"lease_id": "two.x", "run_id": "two", "stale_after_s": 300, "nonce": "n"}')  # another run holds it now
    watch, budget, late = LeaseWatch(), FailureBudget(), FailureBudget()
    watch.guard(budget)

    asyncio.run(asyncio.wait_for(keep_lease(member, watch), timeout=10))  # returns once the loss is seen

    assert budget.tripped and budget.stop_code is Reason.lease_lost
    assert "lost the lease" in budget.reason()
    watch.guard(late)  # a shard's budget made after the loss is halted at once
    assert late.tripped


def test_an_untouched_budget_still_stops_for_failures_only() -> None:
    budget = FailureBudget(max_ratio=0.5, min_attempts=2)
    budget.note(ok=False)
    budget.note(ok=False)
    assert budget.tripped and budget.stop_code is Reason.failure_threshold
