"""Send each attach request once, with no help from the API (it has no idempotency key).

The ledger records an attach *in flight* before the POST and *done* or *failed* after it. A request an
earlier run did is skipped and one that failed is sent again; one whose outcome was lost (then or now) is
settled from the parties' statuses (``transforms.reconcile``), and sent again only when that proves it never
took effect, or when the user asked to resend unknowns.
"""

from __future__ import annotations

import asyncio
from dataclasses import KW_ONLY, dataclass

from connectors.errors import KycAttachError, OutcomeUnknown, TerminalError, TransientError
from connectors.fin import FinClient
from connectors.ledger import DONE, FAILED, IN_FLIGHT, UNKNOWN, Ledger
from flows.outcomes import Outcomes
from transforms.codes import Reason, Status
from transforms.payload import AttachRequest
from transforms.reconcile import all_initiated, party_statuses, settle
from transforms.thresholds import FailureBudget


@dataclass
class Attacher:
    """Submits attach requests and records each one's outcome in the ledger and on its rows."""

    fin: FinClient
    ledger: Ledger
    out: Outcomes
    budget: FailureBudget
    _: KW_ONLY
    settle_delay_s: float
    resend_unknown: bool

    async def attach(self, req: AttachRequest, status_before: dict[str, str], uri_of_row: dict[int, str]) -> None:
        """Attach one request unless an earlier run did; ``status_before`` are the parties' statuses before it."""
        fin = self.fin
        rows = list(req.row_numbers)
        earlier = self.ledger.attach_state(req.attach_key)
        if earlier is not None and earlier.state == DONE:
            self.out.set(rows, Status.skipped, Reason.already_attached, "attached by an earlier run")
            return
        initiated = all_initiated(status_before, req.party_ids)
        if earlier is not None and earlier.state in (IN_FLIGHT, UNKNOWN):
            # An earlier run sent this and never learnt the outcome: settle it, never resend blindly.
            verdict = settle(earlier.party_was_initiated, status_before, req.party_ids)
            if verdict is True:
                await self.ledger.attach_state_change(req.attach_key, DONE)
                self.out.attached(rows, uri_of_row, None, 0, "settled: an earlier run's attach took effect")
                return
            if verdict is None and not self.resend_unknown:
                await self.ledger.attach_state_change(req.attach_key, UNKNOWN)
                self.out.set(rows, Status.unknown, Reason.outcome_unknown,
                             "an earlier run sent this attach and its outcome cannot be settled")
                return
            # False: provably never applied, so sending is safe; None with --resend-unknown: asked for.
        if self.budget.tripped:
            self.out.set(rows, Status.failed, Reason.failure_threshold, self.budget.reason())
            return
        attempts = 0
        while True:
            await self.ledger.attach_state_change(req.attach_key, IN_FLIGHT, party_was_initiated=initiated)
            try:
                attempts += await fin.attach(req.customer_id, req.body)
            except OutcomeUnknown as exc:
                attempts += exc.attempts
                verdict = await self._settle_now(req, initiated)
                if verdict is True:
                    await self.ledger.attach_state_change(req.attach_key, DONE)
                    self.budget.note(ok=True)
                    self.out.attached(rows, uri_of_row, exc.status_code, attempts, "settled after a lost response")
                    return
                if verdict is False and attempts < fin.max_attempts:
                    continue  # provably not applied: the parties are untouched, so sending again is safe
                self.budget.note(ok=False)
                if verdict is False:
                    await self.ledger.attach_state_change(req.attach_key, FAILED, http_status=exc.status_code,
                                                          transient=True)
                    self.out.set(rows, Status.failed, Reason.retries_exhausted,
                                 "attach: the API kept failing and did not apply it", http_status=exc.status_code,
                                 attempts=attempts)
                    return
                await self.ledger.attach_state_change(req.attach_key, UNKNOWN)
                self.out.set(rows, Status.unknown, Reason.outcome_unknown,
                             "the API gave no answer and the party's status cannot settle it",
                             http_status=exc.status_code, attempts=attempts)
                return
            except (TerminalError, TransientError) as exc:
                exc.attempts += attempts
                self.budget.note(ok=False)
                await self.ledger.attach_state_change(req.attach_key, FAILED, http_status=exc.status_code,
                                                      transient=isinstance(exc, TransientError))
                self.out.fail_from(rows, exc)
                return
            self.budget.note(ok=True)
            await self.ledger.attach_state_change(req.attach_key, DONE)
            self.out.attached(rows, uri_of_row, 200, attempts)
            return

    async def _settle_now(self, req: AttachRequest, initiated: bool) -> bool | None:
        """Ask the API whether the attach just sent took effect (see ``transforms.reconcile``)."""
        if not initiated:
            return None
        await asyncio.sleep(self.settle_delay_s)  # let a request the server is still working on land
        try:
            customer = await self.fin.get_customer(req.customer_id)
        except KycAttachError:
            return None
        return settle(initiated, party_statuses(customer), req.party_ids)
