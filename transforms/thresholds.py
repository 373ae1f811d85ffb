"""When a run should stop early instead of burning through a failing API (pure)."""

from __future__ import annotations

from dataclasses import dataclass


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

    def note(self, *, ok: bool) -> None:
        """Record one finished operation (after its retries)."""
        self.attempted += 1
        self.failed += 0 if ok else 1

    @property
    def tripped(self) -> bool:
        """Whether the run should start no new work."""
        return self.attempted >= self.min_attempts and self.failed > self.max_ratio * self.attempted

    def reason(self) -> str:
        """Why the run stopped, for the summary and the log (counts only)."""
        return (f"stopped early: {self.failed} of {self.attempted} API operations failed "
                f"(limit {self.max_ratio:.0%} after {self.min_attempts})")
