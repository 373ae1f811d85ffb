"""Which outcome a row gets from the error that stopped it: the one place that maps the connectors' error tree
(``connectors.errors``) onto row statuses and reasons, deciding on the error's type, never its text."""

from __future__ import annotations

from collections.abc import Iterable

from connectors.errors import (
    KycAttachError,
    LedgerUnavailable,
    OutcomeUnknown,
    RowRejected,
    TerminalError,
    Throttled,
    TransientError,
)
from transforms.codes import Reason, Status
from transforms.outcomes import Outcomes


def fail_from(out: Outcomes, rows: Iterable[int], exc: KycAttachError, *, attempts: int | None = None) -> None:
    """Record an API error on rows: rejected for bad files, failed for the API's refusals (``attempts``: every
    attempt the rows took, when the error counts only those of its own request)."""
    spent = exc.attempts if attempts is None else attempts
    if isinstance(exc, RowRejected):
        out.set(rows, Status.rejected, exc.reason_code, str(exc))
    elif isinstance(exc, LedgerUnavailable):
        out.set(rows, Status.failed, Reason.ledger_unavailable, f"not sent: {exc}")
    elif isinstance(exc, TerminalError):
        out.set(rows, Status.failed, exc.reason_code, str(exc), http_status=exc.status_code, attempts=spent)
    elif isinstance(exc, Throttled):
        out.set(rows, Status.failed, Reason.throttled, str(exc), http_status=exc.status_code, attempts=spent)
    elif isinstance(exc, TransientError):
        out.set(rows, Status.failed, Reason.retries_exhausted, str(exc), http_status=exc.status_code,
                attempts=spent)
    else:
        reason = exc.reason_code if isinstance(exc, OutcomeUnknown) else Reason.outcome_unknown
        out.set(rows, Status.unknown, reason, str(exc), attempts=spent)


def ledger_stop(exc: LedgerUnavailable) -> str:
    """The run's stop line once the ledger's store refused a write (the summary's ``stopped_early``)."""
    return (f"stopped early: {exc}, so nothing was sent after it; once the store is healthy, run again with "
            "--retry-failed and this run's id")
