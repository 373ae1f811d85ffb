"""The end of a run as Prefect sees it: the flow run's final state and the event an automation can act on.

The report is written before either, so a ``Failed`` run still has its report. Callers that want the summary
whatever the state (the CLI, the nightly and migration parents, tests) call the flow with ``return_state=True``
and read it with :func:`summary_of`.
"""

from __future__ import annotations

from typing import Any

from prefect import State
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Failed

from transforms.run_outcome import RunOutcome, event_payload, outcome_message, outcome_of


def end_run(summary: dict[str, Any], *, rejections_fail: bool) -> dict[str, Any] | State[Any]:
    """Emit the run's end event and return what the flow returns: the summary, or a ``Failed`` state holding it."""
    outcome = outcome_of(summary, rejections_fail=rejections_fail)
    run_id = str(summary.get("run_id"))
    related = []
    if flow_run_id := flow_run.get_id():
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                        "prefect.resource.role": "flow-run"})
    emit_event(event=outcome.event,
               resource={"prefect.resource.id": f"kyc-attach.run.{run_id}", "prefect.resource.name": run_id},
               related=related, payload=event_payload(summary, outcome))
    if outcome is RunOutcome.completed:
        return summary
    return Failed(message=outcome_message(summary), data=summary)


def not_started(exc: Exception) -> State[Any]:
    """What a run that refused to start (nothing sent) returns: ``Failed`` with the one-line reason as its message,
    and no traceback in the run's logs, since a refusal (another run holds the customers, a ledger to adopt) is an
    answer for the operator, not a crash. The error stays the state's data, so ``summary_of`` raises it."""
    return Failed(message=str(exc), data=exc)


async def summary_of(state: State[Any]) -> dict[str, Any]:
    """The summary a run's final state holds, ``Failed`` included; any other failure is raised as it happened."""
    if state.is_failed():
        data = await state.aresult(raise_on_failure=False)
        if isinstance(data, dict) and "by_status" in data:
            return data
    result: dict[str, Any] = await state.aresult()
    return result
