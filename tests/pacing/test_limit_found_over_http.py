"""The limiters in the real client against the sandbox over HTTP: they find a gateway's limit they were not told,
and a 429 costs no attempt."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.aiohttp_transport import Transport
from connectors.fin import FinClient
from connectors.rate_limiter import EndpointLimiters
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_world
from transforms.rate_control import Phase

LIMIT_RPS = 20.0  # the sandbox's limit on customer look-ups, a bucket of one request
LOOKUPS = 120


def test_not_told_the_limit_the_client_finds_it_and_429s_spend_no_attempts(fin_sandbox: Any) -> None:
    world = demo_world(customers=1)
    httpx.post(f"{fin_sandbox.url}/_sandbox/world", json=world).raise_for_status()
    faults = {"rate_limit": {"rps": LIMIT_RPS, "burst": 1, "retry_after": False, "endpoints": ["customer"]}}
    httpx.post(f"{fin_sandbox.url}/_sandbox/faults", json=faults).raise_for_status()
    customer_id = world["customers"][0]["customer_id"]
    limiters = EndpointLimiters(1000.0)  # told fifty times the limit

    async def go() -> tuple[list[int], FinClient]:
        async with httpx.AsyncClient(base_url=fin_sandbox.url, timeout=10, transport=Transport()) as http:
            client = FinClient(http, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET), limiter=limiters,
                               rng=random.Random(1), max_attempts=1)
            found = await asyncio.gather(*(client._request("customer", "GET", f"/v2/customers/{customer_id}")
                                           for _ in range(LOOKUPS)))
            return [attempts for _, attempts in found], client

    attempts, client = asyncio.run(go())
    assert attempts == [1] * LOOKUPS  # every look-up got through on its one attempt, 429s or not
    refused = client.stats.statuses["429"]
    assert refused >= 1  # the limit was met...
    # ... and the whole client cut for it: look-ups alone, their 429s are the whole client's
    assert limiters.overall_control.phase is Phase.PACED
    assert limiters.rates()["all"] < 1000.0
    # Unpaced, each look-up meets about two 429s (the first wave, then every retry at once); paced, fewer than one.
    assert refused < LOOKUPS, f"{refused} 429s for {LOOKUPS} look-ups"
