"""Work one shard: group rows into documents, resolve parties, upload files, attach, record outcomes.

Wiring only: rules come from ``transforms`` (grouping, payloads), IO from ``connectors`` (S3, the Fin
API, the ledger). Concurrency is asyncio in one event loop: customers run side by side (bounded), and
inside a customer the uploads run side by side while its attach requests go one at a time (the API
answers 409 to a second attach in progress for a customer).

The steps live next door: ``flows.uploads`` (each file uploaded once), ``flows.attach_once`` (each attach
sent once), ``flows.dry_run`` (check files and write payloads, no API call) and ``transforms.outcomes`` (what
each row ended as, and the report part).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.errors import KycAttachError, LedgerUnavailable, RowRejected
from connectors.fin import FinClient
from connectors.ledger import Ledger, documents_root
from connectors.workarea import SlotRange, read_slot_range
from flows.attach_once import Attacher
from flows.dry_run import DryRun
from flows.row_failures import fail_from, ledger_stop
from flows.shard_services import DryRunMode, ShardServices
from flows.uploads import Uploader
from transforms.codes import Reason, Status
from transforms.exactly_once import Policy
from transforms.grouping import group_documents
from transforms.models import Document
from transforms.outcomes import Outcomes, report_part
from transforms.parties import CustomerParties, PartyRefused
from transforms.thresholds import FailureBudget

log = logging.getLogger("kyc_attach.shard")

_CustomerWork = Callable[[str, list[Document]], Awaitable[None]]


async def run_shard(name: str, where: SlotRange, services: ShardServices, out_path: Path) -> dict[str, int]:
    """Process one shard and write its report part; returns counts by status."""
    rows = read_slot_range(where)
    grouped = group_documents(rows, services.rules)
    # Rows the plan stage rejected ride along only so that their documents' other rows are rejected with them
    # (document_rejected); the plan's own report part reports them, so they leave here.
    rows = rows.filter(pc.is_null(rows.column("reason_code")))
    reported = set(rows.column("row_number").to_pylist())
    outcomes = Outcomes(on_settled=lambda count: services.timeline.rows_settled(count, time.time()))
    outcomes.adopt(grouped.rejects, reported=reported)
    by_customer = _by_customer(grouped.documents, services.only_rows, outcomes)

    ledger = Ledger(services.store, documents_root(services.ledger_root),
                    legacy_root=services.ledger_root)
    await asyncio.to_thread(ledger.load, by_customer)
    work = _customer_work(services, ledger, outcomes, name)
    gate = asyncio.Semaphore(services.max_concurrent_customers)

    async def one(customer_id: str, docs: list[Document]) -> None:
        async with gate:
            await _work_customer(work, services.budget, outcomes, customer_id, docs)

    try:
        # nothing to send (every row rejected, none to retry, or the run stopped): not counted among the runs sending
        async with services.sending() if by_customer and not services.budget.tripped else nullcontext():
            await asyncio.gather(*(one(c, d) for c, d in by_customer.items()))
    finally:
        try:
            await ledger.flush()
        except LedgerUnavailable as exc:
            # outcomes not recorded: the next run settles those documents from their in-flight records
            services.budget.halt(ledger_stop(exc), Reason.ledger_unavailable)
    missing = reported - outcomes.rows.keys()
    if missing:  # a bug, not bad data: every row must leave with a status
        raise RuntimeError(f"shard {name}: {len(missing)} rows got no outcome")
    table = report_part(rows, outcomes)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_path)
    counts = outcomes.counts()
    log.info("shard %s done: %s", name, json.dumps(counts, sort_keys=True))
    return counts


def _by_customer(documents: list[Document], only_rows: frozenset[int] | None,
                 out: Outcomes) -> dict[str, list[Document]]:
    """The documents to work, by customer; with ``only_rows``, the others are reported skipped."""
    by_customer: dict[str, list[Document]] = defaultdict(list)
    for doc in documents:
        if only_rows is not None and only_rows.isdisjoint(doc.row_numbers):
            out.set(doc.row_numbers, Status.skipped, Reason.not_retried, "did not fail in the earlier run")
            continue
        by_customer[doc.customer_id].append(doc)
    return by_customer


def _customer_work(services: ShardServices, ledger: Ledger, outcomes: Outcomes, shard: str) -> _CustomerWork:
    """What is done for each customer: in a dry run, checks and payloads; in a live one, the real thing."""
    mode = services.mode
    if isinstance(mode, DryRunMode):
        return DryRun(services.store.documents(), outcomes, max_file_bytes=services.max_file_bytes,
                      max_parties_per_request=services.rules.max_parties_per_request,
                      max_concurrent_checks=services.max_concurrent_uploads,
                      payloads_file=mode.payloads_dir / f"{shard}.jsonl", ledger=ledger, policy=_policy(services),
                      fin=mode.fin, resolve_parties=_resolve_parties).customer  # the run's own party rules
    return _RealRun(services, mode.fin, ledger, outcomes).customer


async def _work_customer(work: _CustomerWork, budget: FailureBudget, out: Outcomes, customer_id: str,
                         docs: list[Document]) -> None:
    """Everything for one customer; an unexpected error fails its rows, never the shard."""
    if budget.tripped:
        out.set(out.pending(docs), Status.failed, budget.stop_code, budget.reason())
        return
    try:
        await work(customer_id, docs)
    except KycAttachError as exc:
        if not isinstance(exc, RowRejected):
            budget.note(ok=False)
        fail_from(out, out.pending(docs), exc)
    except Exception as exc:  # a bug must cost one customer, not a run of a million rows
        budget.note(ok=False)
        where = _where(exc)
        # The type and the place only: an unexpected error's text may quote a value of the row.
        log.error("unexpected %s at %s: this customer's rows without an outcome are reported unknown",
                  type(exc).__name__, where)
        # unknown, not failed: the error may have come after a request was sent (its documents are in flight in
        # the ledger, and the next run reconciles them like any other unknown).
        out.set(out.pending(docs), Status.unknown, Reason.outcome_unknown,
                f"unexpected {type(exc).__name__} at {where}; its requests' outcome is not known")


def _where(exc: BaseException) -> str:
    """``module.py:line`` of the frame that raised ``exc`` (no values)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb is not None else "?"


class _RealRun:
    """One customer for real: find its parties, upload its files, attach them one request at a time."""

    def __init__(self, services: ShardServices, fin: FinClient, ledger: Ledger, outcomes: Outcomes) -> None:
        self.fin = fin
        self.out = outcomes
        self.uploader = Uploader(services.store.documents(), fin, ledger, outcomes, services.budget,
                                 max_file_bytes=services.max_file_bytes,
                                 max_concurrent=services.max_concurrent_uploads)
        self.attacher = Attacher(fin, ledger, outcomes, services.budget, run_id=services.run_id,
                                 policy=_policy(services),
                                 settle_delay_s=services.settle_delay_s,
                                 max_parties=services.rules.max_parties_per_request)

    async def customer(self, customer_id: str, docs: list[Document]) -> None:
        customer = await self.fin.get_customer(customer_id)
        docs = _resolve_parties(customer, docs, self.out)
        files = await self.uploader.documents(customer_id, docs)
        ready = [d for d in docs if all(f.s3_uri in files for f in d.files)]
        fell = [d for d in docs if not all(f.s3_uri in files for f in d.files)]
        await self.attacher.customer(customer_id, ready, files, customer, fell=fell)


def _policy(services: ShardServices) -> Policy:
    """The operator's choices about earlier sends, for the real run and its preview alike."""
    return Policy(allow_reattach=services.allow_reattach, resend_unknown=services.resend_unknown,
                  trust_initiated_as_not_applied=services.trust_initiated_as_not_applied)


def _resolve_parties(customer: dict[str, Any], docs: list[Document], out: Outcomes) -> list[Document]:
    """The documents with their party id from the customer's parties; rows of the others are rejected."""
    parties = CustomerParties.of(customer.get("associated_parties") or [])
    resolved = []
    for doc in docs:
        party_id = parties.resolve(doc.party_id, doc.party_email)
        if isinstance(party_id, PartyRefused):
            out.set(doc.row_numbers, Status.rejected, party_id.reason, party_id.message)
            continue
        if doc.party_id is None:
            out.party_of_row.update(dict.fromkeys(doc.row_numbers, party_id))
        resolved.append(replace(doc, party_id=party_id))
    return resolved
