"""An attach is recorded in flight as it leaves, not while it waits for its turn: a run cut while its attach
waited for a slot leaves nothing in flight, and the next run, with the default settings, simply sends it."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.fin import FinClient
from connectors.ledger import Ledger
from connectors.objects import ObjectStore
from connectors.rate_limiter import EndpointLimiters
from connectors.s3 import Location
from flows.attach_once import Attacher
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_world
from flows.commands.demo_samples import sample_pdf
from flows.uploads import Uploaded
from tests.support.scenario import load_world, sandbox_record
from transforms.codes import Status
from transforms.exactly_once import FileContent, Policy
from transforms.models import Document, FileRef
from transforms.outcomes import Outcomes
from transforms.thresholds import FailureBudget

SOURCE = "s3://kyc/docs/passport.pdf"


def _passport(customer_id: str, party_id: str) -> Document:
    return Document(customer_id, party_id, None, "identifying", "PASSPORT", "P1234567", "USA", "2021-03-10",
                    "2031-03-10", (FileRef(1, SOURCE),))


async def _run(url: str, ledger_dir: Path, customer_id: str, party_id: str, *, cut_after_s: float | None) -> Outcomes:
    """One run's attach of the party's passport (uploaded first); ``cut_after_s``: the run is cut (its task
    cancelled, as a killed process stops) that long after the attach began, while a customer look-up the sandbox
    holds for seconds has the client's one slot for small requests."""
    data = sample_pdf("passport")
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        # max_in_flight=1: one slot for the small requests (customer look-ups and attaches) together
        fin = FinClient(http, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET),
                        limiter=EndpointLimiters(1000), rng=random.Random(1), max_in_flight=1)

        async def chunks() -> Any:
            yield data

        uri, _ = await fin.upload(customer_id, filename="p.pdf", content_type="application/pdf", size=len(data),
                                  chunks=chunks)
        customer = await fin.get_customer(customer_id)
        ledger = Ledger(ObjectStore(None), Location(None, str(ledger_dir)), linger_s=0)
        ledger.load([customer_id])
        out = Outcomes()
        attacher = Attacher(fin, ledger, out, FailureBudget(), run_id="cut" if cut_after_s else "next",
                            policy=Policy(), settle_delay_s=0, max_parties=10)
        files = {SOURCE: Uploaded(uri, FileContent(hashlib.sha256(data).hexdigest(), "etag", len(data)))}
        attach = attacher.customer(customer_id, [_passport(customer_id, party_id)], files, customer)
        if cut_after_s is None:
            await attach
            return out
        httpx.post(f"{url}/_sandbox/faults", json={"latency": {"ms": 3000, "endpoints": ["customer"]}})
        holder = asyncio.create_task(fin.get_customer(customer_id))
        await asyncio.sleep(0.2)  # the look-up has the slot
        task = asyncio.create_task(attach)
        await asyncio.sleep(cut_after_s)
        task.cancel()
        holder.cancel()
        await asyncio.gather(task, holder, return_exceptions=True)
        httpx.post(f"{url}/_sandbox/faults", json={})
        return out


def test_attach_cut_while_waiting_for_its_slot_is_sent_by_the_next_run(fin_sandbox: Any, tmp_path: Path) -> None:
    world = demo_world(customers=1)
    load_world(fin_sandbox.url, world)
    customer_id = world["customers"][0]["customer_id"]
    party_id = world["customers"][0]["associated_parties"][0]["id"]
    ledger_dir = tmp_path / "ledger" / "_documents"

    asyncio.run(_run(fin_sandbox.url, ledger_dir, customer_id, party_id, cut_after_s=1.0))
    assert sandbox_record(fin_sandbox.url)["requests"].get("attach", 0) == 0  # the cut attach never left

    out = asyncio.run(_run(fin_sandbox.url, ledger_dir, customer_id, party_id, cut_after_s=None))

    assert out.rows[1].status is Status.attached  # not unknown: nothing was recorded in flight for it
    record = sandbox_record(fin_sandbox.url)
    assert len(record["attachments"]) == 1
    assert record["duplicates"]["attachments"] == 0
