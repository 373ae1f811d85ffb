"""When a run should stop early instead of burning through a failing API (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transforms.codes import Reason


@dataclass
class FailureBudget:
    """Counts finished API operations; trips above ``max_ratio`` failures once ``min_attempts`` were made.

    The defaults follow S3 Batch Operations (stop above 50% failed after 1,000 tasks): a handful of
    failures never stops a run, a broken API or credential stops it before it fails every row.
    """

    max_ratio: float = 0.5
    min_attempts: int = 1000
    attempted: int = 0
    failed: int = 0
    halted: str | None = None  # why the run stops whatever the API does (its lease was lost, the ledger refused)
    halt_code: Reason = Reason.failure_threshold  # the reason code of the rows a halt leaves untried
    halt_codes: set[Reason] = field(default_factory=set)  # every cause that halted it, the first and any later

    def halt(self, reason: str, code: Reason) -> None:
        """Stop the run's new work for a cause other than failed operations (the first cause is kept): ``reason``
        for the summary and the log (counts and names only), ``code`` for the rows not tried."""
        if self.halted is None:
            self.halted, self.halt_code = reason, code
        self.halt_codes.add(code)

    def note(self, *, ok: bool) -> None:
        """Record one finished operation (after its retries)."""
        self.attempted += 1
        self.failed += 0 if ok else 1

    @property
    def tripped(self) -> bool:
        """Whether the run should start no new work."""
        return self.halted is not None or (self.attempted >= self.min_attempts
                                           and self.failed > self.max_ratio * self.attempted)

    @property
    def store_refused(self) -> bool:
        """Whether the ledger's store refused a write, whatever halted the run first: the run then skips compacting
        the ledger (each partition's write would be retried against that store, seconds each)."""
        return Reason.ledger_unavailable in self.halt_codes

    @property
    def stop_code(self) -> Reason:
        """The reason code of the rows a tripped budget leaves untried."""
        return self.halt_code if self.halted is not None else Reason.failure_threshold

    def reason(self) -> str:
        """Why the run stopped, for the summary and the log (counts only)."""
        if self.halted is not None:
            return self.halted
        return (f"stopped early: {self.failed} of {self.attempted} API operations failed "
                f"(limit {self.max_ratio:.0%} after {self.min_attempts})")
