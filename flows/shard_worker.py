"""Work one shard: group rows into documents, resolve parties, upload files, attach, record outcomes.

Wiring only: rules come from ``transforms`` (grouping, payloads), IO from ``connectors`` (S3, the Fin
API, the ledger). Concurrency is asyncio in one event loop: customers run side by side (bounded), and
inside a customer the uploads run side by side while its attach requests go one at a time (the API
answers 409 to a second attach in progress for a customer).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.errors import KycAttachError, OutcomeUnknown, RowRejected, TerminalError, TransientError
from connectors.files import check_object, fetch_source, open_source
from connectors.fin import FinClient
from connectors.ledger import DONE, FAILED, IN_FLIGHT, UNKNOWN, Ledger
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store
from connectors.workarea import BucketRange, read_bucket_range
from transforms.codes import Reason, Status
from transforms.grouping import group_documents
from transforms.models import Document, RowOutcome
from transforms.payload import AttachRequest, build_attach_requests, redact_body
from transforms.reconcile import all_initiated, party_statuses, settle
from transforms.report import REPORT_SCHEMA
from transforms.rules import Rules
from transforms.thresholds import FailureBudget

log = logging.getLogger("kyc_attach.shard")


@dataclass
class ShardServices:
    """Everything a shard needs, built once per process and handed in (nothing here builds its own IO)."""

    s3: S3Store
    store: ObjectStore
    fin: FinClient | None  # None for a dry run: no API call at all
    rules: Rules
    ledger_root: Location
    max_file_bytes: int
    max_concurrent_customers: int
    max_concurrent_uploads: int
    budget: FailureBudget = field(default_factory=FailureBudget)
    settle_delay_s: float = 1.0
    resend_unknown: bool = False
    payloads_dir: Path | None = None  # dry run: where the would-be payloads go
    only_rows: frozenset[int] | None = None  # --retry-failed: work only documents with one of these rows


@dataclass
class _Outcomes:
    rows: dict[int, RowOutcome] = field(default_factory=dict)
    # Parties found by email: the report gives their id, which is what a person needs to act on a row.
    party_of_row: dict[int, str] = field(default_factory=dict)

    def set(self, row_numbers: Iterable[int], status: Status, reason: str | None = None, message: str | None = None,
            *, uri: str | None = None, http_status: int | None = None, attempts: int = 0) -> None:
        for n in row_numbers:
            self.rows[n] = RowOutcome(n, status, reason, message, uri, http_status, attempts)

    def fail_from(self, rows: Iterable[int], exc: KycAttachError) -> None:
        """Record an API error on rows: rejected for bad files, failed for the API's refusals."""
        if isinstance(exc, RowRejected):
            self.set(rows, Status.rejected, exc.reason_code, str(exc))
        elif isinstance(exc, TerminalError):
            self.set(rows, Status.failed, exc.reason_code, str(exc), http_status=exc.status_code,
                     attempts=exc.attempts)
        elif isinstance(exc, TransientError):
            self.set(rows, Status.failed, Reason.retries_exhausted, str(exc), http_status=exc.status_code,
                     attempts=exc.attempts)
        else:
            self.set(rows, Status.unknown, Reason.outcome_unknown, str(exc), attempts=exc.attempts)


async def run_shard(name: str, where: BucketRange, services: ShardServices, out_path: Path) -> dict[str, int]:
    """Process one shard and write its report part; returns counts by status."""
    rows = read_bucket_range(where)
    grouped = group_documents(rows, services.rules)
    # Rows the plan stage rejected ride along only so that their documents' other rows are rejected with them
    # (document_rejected); the plan's own report part reports them, so they leave here.
    rows = rows.filter(pc.is_null(rows.column("reason_code")))
    outcomes = _Outcomes()
    for r in grouped.rejects:
        outcomes.rows[r.row_number] = r
    by_customer: dict[str, list[Document]] = defaultdict(list)
    for doc in grouped.documents:
        if services.only_rows is not None and services.only_rows.isdisjoint(doc.row_numbers):
            outcomes.set(doc.row_numbers, Status.skipped, Reason.not_retried, "did not fail in the earlier run")
            continue
        by_customer[doc.customer_id].append(doc)

    ledger = await asyncio.to_thread(Ledger(services.store, services.ledger_root.child(name)).load)
    worker = _CustomerWorker(services, ledger, outcomes, name)
    gate = asyncio.Semaphore(services.max_concurrent_customers)

    async def one(customer_id: str, docs: list[Document]) -> None:
        async with gate:
            await worker.run(customer_id, docs)

    try:
        await asyncio.gather(*(one(c, d) for c, d in by_customer.items()))
    finally:
        await ledger.flush()
    missing = set(rows.column("row_number").to_pylist()) - outcomes.rows.keys()
    if missing:  # a bug, not bad data: every row must leave with a status
        raise RuntimeError(f"shard {name}: {len(missing)} rows got no outcome")
    table = _report_part(rows, outcomes)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_path)
    counts = Counter(o.status.value if isinstance(o.status, Status) else str(o.status) for o in outcomes.rows.values())
    log.info("shard %s done: %s", name, json.dumps(dict(counts), sort_keys=True))
    return dict(counts)


class _CustomerWorker:
    def __init__(self, services: ShardServices, ledger: Ledger, outcomes: _Outcomes, shard: str) -> None:
        self.s = services
        self.ledger = ledger
        self.out = outcomes
        self.shard = shard
        self.uploads = asyncio.Semaphore(services.max_concurrent_uploads)

    async def run(self, customer_id: str, docs: list[Document]) -> None:
        """Everything for one customer; an unexpected error fails its rows, never the shard."""
        if self.s.budget.tripped:
            self.out.set([n for d in docs for n in d.row_numbers if n not in self.out.rows], Status.failed,
                         Reason.failure_threshold, self.s.budget.reason())
            return
        try:
            if self.s.fin is None:
                await self._dry_run(customer_id, docs)
            else:
                await self._attach_customer(self.s.fin, customer_id, docs)
        except KycAttachError as exc:
            if not isinstance(exc, RowRejected):
                self.s.budget.note(ok=False)
            pending = [n for d in docs for n in d.row_numbers if n not in self.out.rows]
            self.out.fail_from(pending, exc)

    # -- a real run ---------------------------------------------------------------------------------
    async def _attach_customer(self, fin: FinClient, customer_id: str, docs: list[Document]) -> None:
        customer = await fin.get_customer(customer_id)
        docs = self._resolve_parties(customer, docs)
        uris = await self._upload_all(fin, customer_id, docs)
        ready = [d for d in docs if all(f.s3_uri in uris for f in d.files)]
        by_party: dict[str, list[Document]] = defaultdict(list)
        for d in ready:
            by_party[d.party_id or ""].append(d)
        status_before = party_statuses(customer)
        uri_of_row = {f.row_number: uris[f.s3_uri] for d in ready for f in d.files}
        for request in build_attach_requests(customer_id, by_party, uris, self.s.rules.max_parties_per_request):
            await self._attach_once(fin, request, status_before, uri_of_row)

    def _resolve_parties(self, customer: dict[str, Any], docs: list[Document]) -> list[Document]:
        parties = customer.get("associated_parties") or []
        by_id = {str(p.get("id", "")).lower(): p for p in parties}
        by_email = {str(p.get("email", "")).lower(): p for p in parties if p.get("email")}
        resolved = []
        for doc in docs:
            party = by_id.get(doc.party_id) if doc.party_id else by_email.get(doc.party_email or "")
            if party is None:
                field_name = "associated_party_id" if doc.party_id else "associated_party_email"
                self.out.set(doc.row_numbers, Status.rejected, Reason.party_not_found,
                             f"{field_name}: no such associated party for this customer")
                continue
            if doc.party_id and doc.party_email and by_email.get(doc.party_email) is not party:
                self.out.set(doc.row_numbers, Status.rejected, Reason.party_mismatch,
                             "associated_party_email: names a different party than associated_party_id")
                continue
            party_id = str(party["id"]).lower()
            if doc.party_id is None:
                self.out.party_of_row.update(dict.fromkeys(doc.row_numbers, party_id))
            resolved.append(replace(doc, party_id=party_id))
        return resolved

    async def _upload_all(self, fin: FinClient, customer_id: str, docs: list[Document]) -> dict[str, str]:
        uris: dict[str, str] = {}

        async def upload_doc(doc: Document) -> None:
            results = await asyncio.gather(*(self._upload_file(fin, customer_id, f.s3_uri) for f in doc.files),
                                           return_exceptions=True)
            errors = [(f, r) for f, r in zip(doc.files, results, strict=True) if isinstance(r, BaseException)]
            for f, r in zip(doc.files, results, strict=True):
                if isinstance(r, str):
                    uris[f.s3_uri] = r
                # A failed upload fails its document; a good one is counted with the document's attach.
                # Bad files are the data's fault, not the API's, and do not count at all.
                if isinstance(r, KycAttachError) and not isinstance(r, RowRejected):
                    self.s.budget.note(ok=False)
            if not errors:
                return
            for f, exc in errors:
                if not isinstance(exc, KycAttachError):
                    raise exc
                self.out.fail_from([f.row_number], exc)
            culprit = errors[0][1]
            status = Status.rejected if isinstance(culprit, RowRejected) else Status.failed
            siblings = [f.row_number for f in doc.files if f.row_number not in self.out.rows]
            self.out.set(siblings, status, Reason.document_rejected, "another file of this document was not accepted")
            for f in doc.files:
                uris.pop(f.s3_uri, None)

        await asyncio.gather(*(upload_doc(d) for d in docs))
        return uris

    async def _upload_file(self, fin: FinClient, customer_id: str, s3_uri: str) -> str:
        async with self.uploads:
            if self.ledger.has_upload(s3_uri):
                # Uploaded before (an earlier run, or an earlier row of this one): a HEAD tells whether the
                # content is unchanged, so the file is not read again.
                info = await check_object(self.s.s3, s3_uri, max_bytes=self.s.max_file_bytes)
                known = self.ledger.upload_uri(s3_uri, info.etag)
                if known:
                    return known
                source = await open_source(self.s.s3, s3_uri, info)
            else:
                # The common case: one GET, whose response carries the size and ETag a HEAD would give.
                source = await fetch_source(self.s.s3, s3_uri, max_bytes=self.s.max_file_bytes)
                info = source.info
            try:
                # The name Fin keeps says nothing about the person (source keys often do).
                name = f"{hashlib.sha256(s3_uri.encode()).hexdigest()[:16]}.{source.extension}"
                uri, _ = await fin.upload(customer_id, filename=name, content_type=source.content_type,
                                          size=info.size, chunks=source.chunks)
            finally:
                source.close()
            await self.ledger.upload_done(s3_uri, info.etag, uri)
            return uri

    async def _attach_once(self, fin: FinClient, req: AttachRequest, status_before: dict[str, str],
                           uri_of_row: dict[int, str]) -> None:
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
                self._attached(rows, uri_of_row, None, 0, "settled: an earlier run's attach took effect")
                return
            if verdict is None and not self.s.resend_unknown:
                await self.ledger.attach_state_change(req.attach_key, UNKNOWN)
                self.out.set(rows, Status.unknown, Reason.outcome_unknown,
                             "an earlier run sent this attach and its outcome cannot be settled")
                return
            # False: provably never applied, so sending is safe; None with --resend-unknown: asked for.
        if self.s.budget.tripped:
            self.out.set(rows, Status.failed, Reason.failure_threshold, self.s.budget.reason())
            return
        attempts = 0
        while True:
            await self.ledger.attach_state_change(req.attach_key, IN_FLIGHT, party_was_initiated=initiated)
            try:
                attempts += await fin.attach(req.customer_id, req.body)
            except OutcomeUnknown as exc:
                attempts += exc.attempts
                verdict = await self._settle_now(fin, req, initiated)
                if verdict is True:
                    await self.ledger.attach_state_change(req.attach_key, DONE)
                    self.s.budget.note(ok=True)
                    self._attached(rows, uri_of_row, exc.status_code, attempts, "settled after a lost response")
                    return
                if verdict is False and attempts < fin.max_attempts:
                    continue  # provably not applied: the parties are untouched, so sending again is safe
                self.s.budget.note(ok=False)
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
                self.s.budget.note(ok=False)
                await self.ledger.attach_state_change(req.attach_key, FAILED, http_status=exc.status_code,
                                                      transient=isinstance(exc, TransientError))
                self.out.fail_from(rows, exc)
                return
            self.s.budget.note(ok=True)
            await self.ledger.attach_state_change(req.attach_key, DONE)
            self._attached(rows, uri_of_row, 200, attempts)
            return

    async def _settle_now(self, fin: FinClient, req: AttachRequest, initiated: bool) -> bool | None:
        """Ask the API whether the attach just sent took effect (see ``transforms.reconcile``)."""
        if not initiated:
            return None
        await asyncio.sleep(self.s.settle_delay_s)  # let a request the server is still working on land
        try:
            customer = await fin.get_customer(req.customer_id)
        except KycAttachError:
            return None
        return settle(initiated, party_statuses(customer), req.party_ids)

    def _attached(self, rows: list[int], uri_of_row: dict[int, str], http_status: int | None,
                  attempts: int, message: str | None = None) -> None:
        for n in rows:
            self.out.rows[n] = RowOutcome(n, Status.attached, None, message, uri_of_row.get(n), http_status, attempts)

    # -- a dry run ------------------------------------------------------------------------------------
    async def _dry_run(self, customer_id: str, docs: list[Document]) -> None:
        placeholder: dict[str, str] = {}

        async def check(doc: Document) -> None:
            for f in doc.files:
                try:
                    async with self.uploads:
                        await check_object(self.s.s3, f.s3_uri, max_bytes=self.s.max_file_bytes)
                    placeholder[f.s3_uri] = "<uri after upload>"
                except RowRejected as exc:
                    self.out.fail_from([f.row_number], exc)
            if any(f.row_number in self.out.rows for f in doc.files):
                siblings = [f.row_number for f in doc.files if f.row_number not in self.out.rows]
                self.out.set(siblings, Status.rejected, Reason.document_rejected,
                             "another file of this document was not accepted")

        await asyncio.gather(*(check(d) for d in docs))
        ready = [d for d in docs if not any(f.row_number in self.out.rows for f in d.files)]
        by_party: dict[str, list[Document]] = defaultdict(list)
        for d in ready:
            by_party[d.party_id or "<resolved by email at run time>"].append(d)
        requests = build_attach_requests(customer_id, by_party, placeholder, self.s.rules.max_parties_per_request)
        if self.s.payloads_dir is not None and requests:
            self.s.payloads_dir.mkdir(parents=True, exist_ok=True)
            with (self.s.payloads_dir / f"{self.shard}.jsonl").open("a") as fh:
                for req in requests:
                    fh.write(json.dumps({"customer_id": customer_id, "body": redact_body(req.body)}) + "\n")
        for d in ready:
            self.out.set(d.row_numbers, Status.skipped, Reason.dry_run, "dry run: checked, not sent")


def _report_part(rows: pa.Table, outcomes: _Outcomes) -> pa.Table:
    ordered = [outcomes.rows[n] for n in rows.column("row_number").to_pylist()]
    columns = {name: rows.column(name) for name in ("row_number", "customer_id", "document_type", "side", "s3_uri")}
    given = rows.column("associated_party_id").to_pylist()
    columns["associated_party_id"] = pa.array(
        [p or outcomes.party_of_row.get(o.row_number) for p, o in zip(given, ordered, strict=True)], pa.string())
    columns.update({
        "status": pa.array([str(o.status) for o in ordered], pa.string()),
        "reason_code": pa.array([None if o.reason_code is None else str(o.reason_code) for o in ordered], pa.string()),
        "message": pa.array([o.message for o in ordered], pa.string()),
        "uri": pa.array([o.uri for o in ordered], pa.string()),
        "http_status": pa.array([o.http_status for o in ordered], pa.int32()),
        "attempts": pa.array([o.attempts for o in ordered], pa.int32()),
    })
    return pa.table(columns).select(REPORT_SCHEMA.names).cast(REPORT_SCHEMA)
