"""How a run ended, as Prefect and a person watching it should see it (pure).

A run whose report holds ``failed`` or ``unknown`` rows, or that the failure threshold stopped, is not a success:
its Prefect flow run ends ``Failed`` (after the report is written) and its end event says ``partial`` or
``failed``, so an automation can alert on it. Rejected rows are the data's fault, not the run's: the run stays
``Completed`` unless the operator says rejections fail it (``KYC_ATTACH_REJECTIONS_FAIL_RUN``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

EVENT_PREFIX = "kyc-attach.run"


class RunOutcome(StrEnum):
    """The three ends of a run that wrote its report."""

    completed = "completed"  # every row attached, skipped, or rejected (rejections allowed)
    partial = "partial"  # some rows failed or are unknown: the report says which
    failed = "failed"  # the failure threshold stopped the run early

    @property
    def event(self) -> str:
        """The Prefect event name emitted when a run ends this way."""
        return f"{EVENT_PREFIX}.{self.value}"


def outcome_of(summary: Mapping[str, Any], *, rejections_fail: bool = False) -> RunOutcome:
    """The outcome of a run from its summary (``build_summary``'s counts)."""
    if summary.get("stopped_early"):
        return RunOutcome.failed
    by_status = summary.get("by_status", {})
    bad = by_status.get("failed", 0) + by_status.get("unknown", 0)
    if rejections_fail:
        bad += by_status.get("rejected", 0)
    return RunOutcome.partial if bad else RunOutcome.completed


def outcome_message(summary: Mapping[str, Any]) -> str:
    """One line for the flow run's state: the counts that matter, never a value from the manifest."""
    by_status = summary.get("by_status", {})
    counts = ", ".join(f"{by_status[s]} {s}" for s in ("failed", "unknown", "rejected", "attached", "skipped")
                       if by_status.get(s))
    line = f"run {summary.get('run_id')}: {counts or 'no rows'} of {summary.get('rows_in', 0)} rows"
    if summary.get("stopped_early"):
        line += f"; stopped early: {summary['stopped_early']}"
    return line + f"; report: {summary.get('report')}"


def event_payload(summary: Mapping[str, Any], outcome: RunOutcome) -> dict[str, Any]:
    """The end event's payload: counts by status and by reason, ids and where the report is; no row values."""
    return {
        "outcome": outcome.value,
        "run_id": summary.get("run_id"),
        "job_id": summary.get("job_id"),
        "dry_run": bool(summary.get("dry_run")),
        "rows_in": summary.get("rows_in", 0),
        "by_status": dict(summary.get("by_status", {})),
        "by_reason": dict(summary.get("by_reason", {})),
        "stopped_early": bool(summary.get("stopped_early")),
        "report": summary.get("report"),
    }
