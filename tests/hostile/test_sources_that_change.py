"""A source object replaced or deleted while its upload is retried ends at once, as what happened to it.

The upload re-reads its source on every attempt with ``If-Match`` on the ETag seen first; the error is raised
inside the request body, so it must come out of the Fin client as the row's reason (``source_changed``,
``missing_object``), not as a transport failure retried for minutes and reported ``retries_exhausted``.
Real parts: the loopback S3 server, the sandbox (every upload answered 503), the production transport.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.aiohttp_transport import Transport
from connectors.errors import RowRejected
from connectors.files import fetch_source
from connectors.fin import FinClient
from connectors.objects import ObjectStore
from connectors.rate_limiter import EndpointLimiters
from connectors.s3 import S3Store, make_s3_client
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_world
from flows.commands.demo_samples import sample_pdf
from tests.support.scenario import load_world, sandbox_record


async def _upload_while(fin_url: str, store: ObjectStore, uri: str, meanwhile: Any, customer_id: str) -> Any:
    """Open the source, let ``meanwhile`` change it, then upload (every attempt answered 503 by the sandbox)."""
    source = await fetch_source(store, uri, max_bytes=1 << 20)
    meanwhile()
    async with httpx.AsyncClient(base_url=fin_url, timeout=10, transport=Transport()) as http:
        fin = FinClient(http, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET),
                        limiter=EndpointLimiters(1000), rng=random.Random(1), max_attempts=6,
                        sleep=lambda _s: asyncio.sleep(0))
        try:
            return await fin.upload(customer_id, filename="x.pdf", content_type=source.content_type,
                                    size=source.info.size, chunks=source.chunks)
        finally:
            source.close()


@pytest.mark.parametrize(("change", "reason"), [("replace", "source_changed"), ("delete", "missing_object")])
def test_source_changed_during_retries_is_rejected_at_once(change: str, reason: str, fin_sandbox: Any,
                                                           bucket: str) -> None:
    world = demo_world(customers=1)
    load_world(fin_sandbox.url, world, {"errors": {"share": 1.0, "statuses": [503], "endpoints": ["upload"]}})
    client = make_s3_client()
    store = ObjectStore(S3Store(client))
    client.put_object(Bucket=bucket, Key="docs/a.pdf", Body=sample_pdf("first version"))

    def meanwhile() -> None:
        if change == "replace":
            client.put_object(Bucket=bucket, Key="docs/a.pdf", Body=sample_pdf("second version"))
        else:
            client.delete_object(Bucket=bucket, Key="docs/a.pdf")

    with pytest.raises(RowRejected) as info:
        asyncio.run(_upload_while(fin_sandbox.url, store, f"s3://{bucket}/docs/a.pdf", meanwhile,
                                  world["customers"][0]["customer_id"]))
    assert info.value.reason_code == reason
    record = sandbox_record(fin_sandbox.url)
    # The first attempt was answered 503; the second began (its multipart head went out) and stopped at the
    # source, cut short, so nothing was stored; no third attempt followed.
    assert record["requests"].get("upload") == 2, record["requests"]
    assert record["uploads"] == []
