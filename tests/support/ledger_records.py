"""Filling a ledger's document index with records, on whichever store a test gives (a local folder, S3)."""

from __future__ import annotations

import asyncio

from connectors.ledger import Ledger, Send
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.exactly_once import DocState


def fill_ledger(store: ObjectStore, root: Location, customers: list[str], run: str, state: DocState) -> None:
    """One document a customer, uploaded, sent by ``run`` and ending ``state`` (attached, or refused with a 400),
    each record carrying its source object; every record is written before this returns."""
    async def go() -> None:
        ledger = Ledger(store, root, linger_s=0)
        for c in customers:
            ledger.know_sources({f"doc-{c}": [f"s3://in/{c}/front.pdf"]})
            await ledger.upload_done(c, f"s3://in/{c}/front.pdf", "etag-1", f"/{c}_front.pdf")
            doc, send = {f"doc-{c}": "party-1"}, Send(run, "r1", 1.0)
            await ledger.sending(c, doc, send)
            if state is DocState.attached:
                await ledger.answered(c, doc, send, 200)
            else:
                await ledger.not_applied(c, doc, run_id=run, http_status=400)
        await ledger.flush()

    asyncio.run(go())
