"""Attach each document once, with no help from the API (it has no idempotency key).

The unit is the document. For each document of a customer the ledger's record and the parties' statuses go
through ``transforms.exactly_once.before_send``; only the documents it says to send are grouped into
requests. Each request's documents are recorded *in flight* (durably) before the POST and *attached*,
*failed* or *unknown* after it; a lost answer is settled by ``after_lost_response`` from positive evidence
only. This module performs those decisions and makes none of its own: each decision has one method that writes
both its ledger record (a named move of ``connectors.ledger``) and its rows' outcome, whether it settles an
earlier run's record or this run's POST.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from connectors.errors import (
    KycAttachError,
    LedgerUnavailable,
    OutcomeUnknown,
    Refused,
    TerminalError,
    TransientError,
)
from connectors.fin import FinClient
from connectors.ledger import LEGACY_RUN, DocRecord, Ledger, Send
from flows.row_failures import fail_from, ledger_stop
from flows.uploads import Uploaded
from transforms.codes import Reason, Status
from transforms.document_details import SIDE_FIELD, detail_digests, differing_fields
from transforms.exactly_once import (
    DocState,
    Evidence,
    Next,
    Policy,
    after_lost_response,
    before_send,
    document_key,
    etag_document_key,
)
from transforms.identifying import NO_IDENTIFYING_MESSAGE, has_identifying, parties_without_identifying
from transforms.models import Document
from transforms.outcomes import Outcomes
from transforms.payload import AttachRequest, build_attach_requests
from transforms.reconcile import PartyStatus, all_initiated, evidence, party_statuses
from transforms.refusals import after_refusal
from transforms.thresholds import FailureBudget


@dataclass(frozen=True, slots=True)
class _Keyed:
    """A document with its identity across runs (``transforms.exactly_once.document_key``)."""

    key: str
    doc: Document


@dataclass(frozen=True, slots=True)
class _Docs:
    """What one decision is about: documents of one customer (key → party id) and their manifest rows."""

    customer_id: str
    party_of_key: dict[str, str]
    rows: list[int]


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A request the API refused as invalid, with every attempt it took in this run."""

    error: Refused
    attempts: int


@dataclass
class Attacher:
    """Decides, per document, what to send; submits the requests and records each document's outcome."""

    fin: FinClient
    ledger: Ledger
    out: Outcomes
    budget: FailureBudget
    _: KW_ONLY
    run_id: str
    policy: Policy
    settle_delay_s: float
    max_parties: int

    async def customer(self, customer_id: str, docs: list[Document], files: Mapping[str, Uploaded],
                       customer: Mapping[str, Any], *, fell: Sequence[Document] = ()) -> None:
        """Attach the documents (parties resolved, files uploaded) that no earlier run attached; ``fell`` are the
        customer's documents whose files were not all uploaded (rejected, or failed on the way)."""
        statuses = party_statuses(customer)
        content = {s3: up.content for s3, up in files.items()}
        keyed = [_Keyed(document_key(customer_id, d.party_id or "", d, content), d) for d in docs]
        secret = self.ledger.details_secret
        self.ledger.know_sources({k.key: sorted({f.s3_uri for f in k.doc.files}) for k in keyed})
        legacy = self._legacy_records(customer_id, keyed, files) if self.ledger.has_legacy else {}
        uri_of_row = {f.row_number: files[f.s3_uri].uri for d in docs for f in d.files}
        to_send: dict[str, list[_Keyed]] = defaultdict(list)
        identified: set[str] = set()  # parties with an identifying document attached by an earlier run
        for k in keyed:
            doc, key, party = k.doc, k.key, k.doc.party_id or ""
            # ledgers written before content hashes know the document by its files' ETags and sides
            earlier = (self.ledger.document(key)
                       or self.ledger.document(etag_document_key(customer_id, party, doc, content))
                       or legacy.get(key))
            nxt = before_send(earlier.state if earlier else None,
                              self._evidence_of(customer_id, doc, earlier, statuses), self.policy)
            details = detail_digests(secret, key, doc, content)
            if nxt is Next.send:
                self.ledger.describe(key, details)
                to_send[party].append(k)
                continue
            assert earlier is not None  # before_send sends every document without a record
            if earlier.details:  # what it was sent with stays on the records this run writes for it
                self.ledger.describe(key, earlier.details)
            if nxt in (Next.skip_attached, Next.record_attached) and has_identifying([doc]):
                identified.add(party)
            target = _Docs(customer_id, {key: party}, list(doc.row_numbers))
            by = _run(earlier.run_id)
            if nxt is Next.skip_attached:
                await self._skip_attached(target, earlier, differing_fields(earlier.details, details),
                                          carry=self.ledger.document(key) is None)
            elif nxt is Next.record_attached:
                await self._record_attached(target, Send.of(earlier), uri_of_row, earlier=earlier, how=(
                    f"attached by {by}: its answer was lost, and the party's status moved after it was sent"))
            else:
                await self._report_unknown(target, Send.of(earlier), earlier=earlier, reason=Reason.outcome_unknown,
                                           message=f"{by} sent this attach and nothing the API shows proves it "
                                                   "took effect")
        # parties whose identifying document failed on the way (throttled, the API down): not the data's fault
        failed = {d.party_id or "" for d in fell if has_identifying([d]) and any(
            (o := self.out.rows.get(n)) is not None and o.status is Status.failed for n in d.row_numbers)}
        for party in set(parties_without_identifying(_documents(to_send))) - identified:
            # its identifying documents fell on the way (a file check, an unknown party) or the manifest named the
            # party two ways (id, email) the plan could not match: the API would refuse the rest. The rows follow
            # the identifying document: failed when it failed (so --retry-failed takes them too), else rejected.
            rows = [n for k in to_send.pop(party) for n in k.doc.row_numbers]
            self.out.set(rows, Status.failed if party in failed else Status.rejected, Reason.no_identifying_document,
                         NO_IDENTIFYING_MESSAGE)
        uris = {s3: up.uri for s3, up in files.items()}
        for request in build_attach_requests(customer_id, _documents(to_send), uris, self.max_parties):
            await self._send_isolating(request, to_send, uris, statuses, uri_of_row)

    async def _send_isolating(self, first: AttachRequest, docs_of: Mapping[str, list[_Keyed]],
                              uris: Mapping[str, str], statuses: Mapping[str, PartyStatus],
                              uri_of_row: dict[int, str]) -> None:
        """Send a request; when the API refuses it (nothing applied), fail only the parties it refused and send
        the others again (``transforms.refusals``), so one bad party does not sink up to nine good ones."""
        pending = [first]
        while pending:
            req = pending.pop(0)
            refusal = await self._send(req, {k.key: k.doc.party_id or "" for p in req.party_ids for k in docs_of[p]},
                                       statuses, uri_of_row)
            if refusal is None:
                continue
            exc = refusal.error
            plan = after_refusal(req.party_ids, exc.field_errors)
            for party, reasons in plan.refused.items():
                self.budget.note(ok=False)
                message = (f"attach: HTTP {exc.status_code}: the API refused this party's documents; fields: "
                           + ", ".join(reasons)) if reasons else str(exc)
                rows = [n for k in docs_of[party] for n in k.doc.row_numbers]
                self.out.set(rows, Status.failed, exc.reason_code, message, http_status=exc.status_code,
                             attempts=refusal.attempts)
            pending[:0] = [r for group in plan.resend
                           for r in build_attach_requests(req.customer_id, _documents({p: docs_of[p] for p in group}),
                                                          uris, len(group))]

    def _evidence_of(self, customer_id: str, doc: Document, earlier: DocRecord | None,
                     statuses: Mapping[str, PartyStatus]) -> Evidence:
        """What the party's status says about an earlier run's send of this document."""
        if earlier is None or earlier.state not in (DocState.in_flight, DocState.unknown):
            return Evidence.none
        party = doc.party_id or ""
        # A later POST for the same party moves its status too: then it says nothing about this one.
        if not self.ledger.is_last_request_of(customer_id, party, earlier.request_id):
            return Evidence.none
        return evidence(earlier.initiated_before, earlier.sent_at, statuses, [party],
                        after_conflict=earlier.after_conflict)

    def _legacy_records(self, customer_id: str, keyed: list[_Keyed],
                        files: Mapping[str, Uploaded]) -> dict[str, DocRecord]:
        """Each document's state (by key) in a ledger from before the upgrade: the old code keyed whole requests,
        so rebuild the requests it would have built for this customer and give each document its request's
        state."""
        by_party: dict[str, list[_Keyed]] = defaultdict(list)
        for k in keyed:
            by_party[k.doc.party_id or ""].append(k)
        found: dict[str, DocRecord] = {}
        uris = {s3: up.uri for s3, up in files.items()}
        for request in build_attach_requests(customer_id, _documents(by_party), uris, self.max_parties):
            record = self.ledger.legacy_request(request.attach_key)
            if record is not None:
                found.update({k.key: record for p in request.party_ids for k in by_party[p]})
        return found

    # One method per decision: each writes the documents' ledger record and their rows' outcome.

    async def _skip_attached(self, docs: _Docs, earlier: DocRecord, differ: Sequence[str], *, carry: bool) -> None:
        """Attached by an earlier run: not sent (``differ``: the details, by field name, that differ from those
        it was attached with; ``carry``: the record was found under an older key only)."""
        by = _run(earlier.run_id)
        if any(f != SIDE_FIELD for f in differ):
            self.out.set(docs.rows, Status.skipped, Reason.attached_with_other_details,
                         f"attached by {by} with other details: {', '.join(differ)} differ; these were not sent "
                         "(--allow-reattach sends them)")
        elif differ:
            self.out.set(docs.rows, Status.skipped, Reason.already_attached,
                         f"attached by {by} with the sides the other way round; Fin keeps the sides first sent "
                         "(--allow-reattach sends these)")
        else:
            self.out.set(docs.rows, Status.skipped, Reason.already_attached, f"attached by {by}")
        if carry:
            await self.ledger.carried(docs.customer_id, docs.party_of_key, earlier)

    async def _record_attached(self, docs: _Docs, send: Send, uri_of_row: dict[int, str], *, how: str,
                               earlier: DocRecord | None = None, http_status: int | None = None,
                               attempts: int = 0) -> None:
        """The answer to ``send`` was lost and the parties' statuses show it took effect (``earlier``: the
        record of an earlier run this settles)."""
        await self.ledger.shown_applied(docs.customer_id, docs.party_of_key, send, earlier=earlier)
        self.out.attached(docs.rows, uri_of_row, http_status, attempts, how)

    async def _report_unknown(self, docs: _Docs, send: Send, *, reason: Reason, message: str,
                              earlier: DocRecord | None = None, http_status: int | None = None,
                              attempts: int = 0) -> None:
        """Nothing the API shows settles whether ``send`` took effect: never sent again blindly."""
        await self.ledger.left_unknown(docs.customer_id, docs.party_of_key, send, earlier=earlier)
        self.out.set(docs.rows, Status.unknown, reason, message, http_status=http_status, attempts=attempts)

    async def _report_failed(self, docs: _Docs, http_status: int | None, attempts: int) -> None:
        """Provably not applied and no attempts left: a later run sends it again."""
        await self.ledger.not_applied(docs.customer_id, docs.party_of_key, run_id=self.run_id,
                                      http_status=http_status)
        self.out.set(docs.rows, Status.failed, Reason.retries_exhausted,
                     "attach: the API kept failing and did not apply it", http_status=http_status, attempts=attempts)

    async def _answered(self, docs: _Docs, send: Send, uri_of_row: dict[int, str], attempts: int) -> None:
        """The API answered the POST: attached."""
        await self.ledger.answered(docs.customer_id, docs.party_of_key, send, 200)
        self.out.attached(docs.rows, uri_of_row, 200, attempts)

    async def _send(self, req: AttachRequest, party_of_key: dict[str, str], statuses: Mapping[str, PartyStatus],
                    uri_of_row: dict[int, str]) -> _Refusal | None:
        """Send one request until it is answered, or its outcome is decided from the parties' statuses.

        A refusal (400/422) is recorded as failed in the ledger (nothing was applied, so a crash before the
        resend leaves documents a later run sends again) and returned for the caller to split the request;
        every other outcome is reported here."""
        fin, ledger = self.fin, self.ledger
        docs = _Docs(req.customer_id, party_of_key, list(req.row_numbers))
        if self.budget.tripped:
            self.out.set(docs.rows, Status.failed, self.budget.stop_code, self.budget.reason())
            return None
        initiated = all_initiated(statuses, req.party_ids)
        attempts = 0
        while True:
            post = _Post(self.run_id, secrets.token_hex(8), initiated)

            async def in_flight(after_conflict: bool, post: _Post = post) -> None:
                # Recorded once the request has its rate token and slot, just before its POST: a run killed in
                # between leaves a record of a request that never left only for as long as this write takes.
                # Every record of this POST carries its id, time and whether a 409 was waited out before it: a
                # later run reads evidence against them.
                post.sent_at = time.time()
                post.after_conflict = after_conflict
                await ledger.sending(docs.customer_id, party_of_key, post.send)

            try:
                attempts += await fin.attach(docs.customer_id, req.body, before_send=in_flight)
            except LedgerUnavailable as exc:
                # The record that lets a later run settle this send could not be made durable: it is not sent,
                # nor is anything after it.
                self.budget.halt(ledger_stop(exc), Reason.ledger_unavailable)
                self.out.set(docs.rows, Status.failed, Reason.ledger_unavailable, f"not sent: {exc}")
                return None
            except OutcomeUnknown as exc:
                attempts += exc.attempts
                nxt = after_lost_response(await self._evidence_now(req, initiated, post.sent_at, post.after_conflict),
                                          attempts, fin.max_attempts, self.policy)
                if nxt is Next.send:
                    continue  # provably not applied (the operator trusts INITIATED): sending again is safe
                self.budget.note(ok=nxt is Next.record_attached)
                if nxt is Next.record_attached:
                    await self._record_attached(docs, post.send, uri_of_row, http_status=exc.status_code,
                                                attempts=attempts,
                                                how="the answer was lost; the parties' status moved after the send")
                elif nxt is Next.report_failed:
                    await self._report_failed(docs, exc.status_code, attempts)
                else:
                    await self._report_unknown(docs, post.send, reason=exc.reason_code, message=_unknown_message(exc),
                                               http_status=exc.status_code, attempts=attempts)
                return None
            except (TerminalError, TransientError) as exc:
                attempts += exc.attempts
                if post.sent_at is None:  # failed before its POST left (a token, a breaker)
                    await ledger.not_sent(docs.customer_id, party_of_key, run_id=self.run_id,
                                          http_status=exc.status_code)
                else:
                    await ledger.not_applied(docs.customer_id, party_of_key, run_id=self.run_id,
                                             http_status=exc.status_code)
                if isinstance(exc, Refused):
                    return _Refusal(exc, attempts)
                self.budget.note(ok=False)
                fail_from(self.out, docs.rows, exc, attempts=attempts)
                return None
            self.budget.note(ok=True)
            await self._answered(docs, post.send, uri_of_row, attempts)
            return None

    async def _evidence_now(self, req: AttachRequest, initiated: bool, sent_at: float | None,
                            after_conflict: bool) -> Evidence:
        """Ask the API, ``settle_delay_s`` after a lost answer, what the parties' statuses say now."""
        if not initiated or sent_at is None:
            return Evidence.none  # past INITIATED already (or no send time to compare with): nothing to learn
        await asyncio.sleep(self.settle_delay_s)  # let a request the server is still working on land
        try:
            customer = await self.fin.get_customer(req.customer_id)
        except KycAttachError:
            return Evidence.none
        return evidence(initiated, sent_at, party_statuses(customer), req.party_ids, after_conflict=after_conflict)


@dataclass
class _Post:
    """One POST of an attach request: its id, and the time its in-flight record was made (just before it left)."""

    run_id: str
    request_id: str
    initiated_before: bool
    sent_at: float | None = None
    after_conflict: bool = False  # a 409 "attach in progress" was waited out before it left

    @property
    def send(self) -> Send:
        """The POST as its documents' records name it."""
        return Send(self.run_id, self.request_id, self.sent_at, self.initiated_before, self.after_conflict)


def _documents(keyed_by_party: Mapping[str, list[_Keyed]]) -> dict[str, list[Document]]:
    """The documents of each party, as requests are built from them."""
    return {party: [k.doc for k in keyed] for party, keyed in keyed_by_party.items()}


def _unknown_message(exc: OutcomeUnknown) -> str:
    """Why an attach's outcome is unknown, for the report (the error names the endpoint and the fault, no value)."""
    if exc.reason_code is Reason.unexpected_answer:
        return f"{exc}: nothing the API shows proves the attach took effect"
    return "the API gave no answer and nothing it shows proves the attach took effect"


def _run(run_id: str) -> str:
    """A run as the report names it."""
    return run_id if run_id == LEGACY_RUN else f"run {run_id}"
