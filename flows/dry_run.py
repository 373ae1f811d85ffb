"""A dry run of one customer: check its files and write the attach payloads a real run would send.

No upload and no attach, so files get no uri: the payloads carry placeholders there. A customer with documents
whose party is known only by email is read (one ``GET`` of the customer, when API credentials are configured) and
its parties resolved by the run's own function, so ``party_not_found`` and the other party refusals show in the
dry run as in the real one; without credentials those parties stay unresolved and the rows say so. Each file
gets the checks the upload makes (present, not empty, not too large, PDF/JPEG/PNG by its first bytes and whole
by its last ones) from a HEAD and ranged reads of its head and tail, never the whole file.

The dry run previews the real run from the ledger: a document an earlier run attached is reported ``skipped`` /
``already_attached``, one whose earlier send has no known outcome ``unknown`` / ``outcome_unknown`` (what a real
run reports unless the parties' statuses settle it), and the rest, which a real run would send, ``skipped`` /
``dry_run``. A document named by party email is looked up under each party the ledger knows for its customer.
A file is known by the SHA-256 S3 keeps for it or the ledger recorded for its source and ETag; a copy under a new
key or ETag is not read to hash it, so the dry run previews it as new where the real run finds it attached. Each
message names the document's rows, so the summary counts documents (``transforms.dry_run_preview``).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from connectors.errors import RowRejected
from connectors.files import check_file
from connectors.fin import FinClient
from connectors.ledger import DocRecord, Ledger
from connectors.objects import ObjectStore
from connectors.s3 import ObjectInfo
from flows.row_failures import fail_from
from transforms.codes import Reason, Status
from transforms.dry_run_preview import already_attached_message, new_document_message, unknown_message
from transforms.exactly_once import (
    DocState,
    Evidence,
    FileContent,
    Next,
    Policy,
    before_send,
    document_key,
    etag_document_key,
)
from transforms.models import Document
from transforms.outcomes import Outcomes
from transforms.payload import build_attach_requests, redact_body

#: Resolves a customer's documents to its parties, rejecting the rows of the rest (the run's ``_resolve_parties``).
PartyResolver = Callable[[dict[str, Any], list[Document], Outcomes], list[Document]]
UNRESOLVED_PARTY = "<resolved by email at run time>"
NOT_LOOKED_UP = ("dry run: checked, not sent; its party (known by email) was not looked up: no API credentials "
                 "configured")


@dataclass
class DryRun:
    """Checks customers' files and appends their would-be payloads to ``payloads_file`` (if given)."""

    store: ObjectStore
    out: Outcomes
    _: KW_ONLY
    max_file_bytes: int
    max_parties_per_request: int
    max_concurrent_checks: int
    payloads_file: Path | None
    fin: FinClient | None = None  # reads customers only
    resolve_parties: PartyResolver | None = None
    ledger: Ledger | None = None
    policy: Policy = field(default_factory=Policy)
    checks: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.checks = asyncio.Semaphore(self.max_concurrent_checks)

    async def customer(self, customer_id: str, docs: list[Document]) -> None:
        """Check one customer's documents, write the payloads for those that pass, report every row."""
        placeholder: dict[str, str] = {}
        by_email = any(d.party_id is None for d in docs)
        looked_up = by_email and self.fin is not None and self.resolve_parties is not None
        if looked_up:
            assert self.fin is not None and self.resolve_parties is not None
            docs = self.resolve_parties(await self.fin.get_customer(customer_id), docs, self.out)
        infos: dict[str, ObjectInfo] = {}
        await asyncio.gather(*(self._check(d, placeholder, infos) for d in docs))
        ready = [d for d in docs if not any(f.row_number in self.out.rows for f in d.files)
                 and self._preview(customer_id, d, infos)]
        by_party: dict[str, list[Document]] = defaultdict(list)
        for d in ready:
            by_party[d.party_id or UNRESOLVED_PARTY].append(d)
        requests = build_attach_requests(customer_id, by_party, placeholder, self.max_parties_per_request)
        if self.payloads_file is not None and requests:
            self.payloads_file.parent.mkdir(parents=True, exist_ok=True)
            with self.payloads_file.open("a") as fh:
                for req in requests:
                    fh.write(json.dumps({"customer_id": customer_id, "body": redact_body(req.body)}) + "\n")
        for d in ready:
            message = NOT_LOOKED_UP if d.party_id is None else new_document_message(d.row_numbers)
            self.out.set(d.row_numbers, Status.skipped, Reason.dry_run, message)

    def _preview(self, customer_id: str, doc: Document, infos: dict[str, ObjectInfo]) -> bool:
        """Whether a real run would send this document; if not, its rows are reported as that run would."""
        earlier = self._earlier(customer_id, doc, infos)
        if earlier is None:
            return True
        nxt = before_send(earlier.state, Evidence.none, self.policy)  # no API call: no party status to read
        if nxt is Next.send:
            return True
        if earlier.state is DocState.attached:
            self.out.set(doc.row_numbers, Status.skipped, Reason.already_attached,
                         already_attached_message(earlier.run_id, doc.row_numbers))
        else:
            self.out.set(doc.row_numbers, Status.unknown, Reason.outcome_unknown,
                         unknown_message(earlier.run_id, doc.row_numbers))
        return False

    def _earlier(self, customer_id: str, doc: Document, infos: dict[str, ObjectInfo]) -> DocRecord | None:
        """What the ledger knows of this document (its party given, or any party the ledger knows there)."""
        if self.ledger is None:
            return None
        content: dict[str, FileContent] = {}
        for f in doc.files:
            info = infos[f.s3_uri]
            sha = info.sha256 or self.ledger.content_sha256(customer_id, f.s3_uri, info.etag, info.crc64nvme)
            content[f.s3_uri] = FileContent(sha or "", info.etag, info.size)
        hashed = all(c.sha256 for c in content.values())
        parties = [doc.party_id] if doc.party_id else sorted(self.ledger.parties_of(customer_id))
        for party in parties:
            keys = ([document_key(customer_id, party, doc, content)] if hashed else []) + [
                etag_document_key(customer_id, party, doc, content)]
            for key in keys:
                if (record := self.ledger.document(key)) is not None:
                    return record
        return None

    async def _check(self, doc: Document, placeholder: dict[str, str], infos: dict[str, ObjectInfo]) -> None:
        for f in doc.files:
            try:
                async with self.checks:
                    infos[f.s3_uri] = await check_file(self.store, f.s3_uri, max_bytes=self.max_file_bytes)
                placeholder[f.s3_uri] = "<uri after upload>"
            except RowRejected as exc:
                fail_from(self.out, [f.row_number], exc)
        if any(f.row_number in self.out.rows for f in doc.files):
            self.out.reject_rest_of(doc, Status.rejected)
