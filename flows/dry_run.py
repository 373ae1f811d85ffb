"""A dry run of one customer: check its files and write the attach payloads a real run would send.

No upload and no attach, so files get no uri: the payloads carry placeholders there. A customer with documents
whose party is known only by email is read (one ``GET`` of the customer, when API credentials are configured) and
its parties resolved by the run's own function, so ``party_not_found`` and the other party refusals show in the
dry run as in the real one; without credentials those parties stay unresolved and the rows say so. Each file
gets the checks the upload makes (present, not empty, not too large, PDF/JPEG/PNG by its first bytes and whole
by its last ones) from a HEAD and ranged reads of its head and tail, never the whole file; the rows of documents
that pass are reported ``skipped`` with reason ``dry_run``.
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
from connectors.objects import ObjectStore
from flows.row_failures import fail_from
from transforms.codes import Reason, Status
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
        await asyncio.gather(*(self._check(d, placeholder) for d in docs))
        ready = [d for d in docs if not any(f.row_number in self.out.rows for f in d.files)]
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
            message = NOT_LOOKED_UP if d.party_id is None else "dry run: checked, not sent"
            self.out.set(d.row_numbers, Status.skipped, Reason.dry_run, message)

    async def _check(self, doc: Document, placeholder: dict[str, str]) -> None:
        for f in doc.files:
            try:
                async with self.checks:
                    await check_file(self.store, f.s3_uri, max_bytes=self.max_file_bytes)
                placeholder[f.s3_uri] = "<uri after upload>"
            except RowRejected as exc:
                fail_from(self.out, [f.row_number], exc)
        if any(f.row_number in self.out.rows for f in doc.files):
            self.out.reject_rest_of(doc, Status.rejected)
