"""The Fin API client believes only the API's own answers, within a time and a size, against the sandbox over HTTP:
a gateway's HTML page answered 200, a body dribbled a byte at a time, a body of hundreds of MiB, a token whose
lifetime is ``Infinity``."""

from __future__ import annotations

import asyncio
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.aiohttp_transport import Transport
from connectors.errors import OutcomeUnknown, TerminalError, TransientError
from connectors.fin import FinClient
from connectors.rate_limiter import EndpointLimiters
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_world
from flows.commands.demo_samples import sample_pdf
from tests.support.scenario import load_world, sandbox_record
from transforms.codes import Reason

ATTEMPTS = 3


async def _no_wait(_seconds: float) -> None:
    return None


async def _with_client(url: str, body: Callable[[FinClient], Awaitable[Any]], *, timeout_s: float = 10) -> Any:
    # The transport production uses (flows.runtime.fin_client): aiohttp under the httpx API.
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, transport=Transport()) as http:
        client = FinClient(http, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET),
                           limiter=EndpointLimiters(1000), rng=random.Random(1), max_attempts=ATTEMPTS,
                           sleep=_no_wait)
        return await body(client)


@pytest.fixture()
def world(fin_sandbox: Any) -> dict[str, Any]:
    """A one-customer world loaded in the sandbox (its record emptied, no faults)."""
    w = demo_world(customers=1)
    load_world(fin_sandbox.url, w)
    return w


@pytest.fixture()
def faults(fin_sandbox: Any, world: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """Sets the sandbox's faults (reloading the world, which empties the record)."""
    return lambda f: load_world(fin_sandbox.url, world, f)


def _ids(world: dict[str, Any]) -> tuple[str, str]:
    customer = world["customers"][0]
    return customer["customer_id"], customer["associated_parties"][0]["id"]


async def _upload(c: FinClient, customer_id: str) -> str:
    data = sample_pdf("passport")

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    uri, _ = await c.upload(customer_id, filename="p.pdf", content_type="application/pdf", size=len(data),
                            chunks=chunks)
    return uri


def _passport_body(party_id: str, uri: str) -> dict[str, Any]:
    passport = {"type": "PASSPORT", "number": "P1234567", "country": "USA", "issue_date": "2021-03-10",
                "expiry_date": "2031-03-10", "files": [{"uri": uri}]}
    return {"associated_party_attachments": [{"associated_party_id": party_id, "identifying_documents": [passport],
                                              "address_documents": [], "supporting_documents": []}]}


def test_an_attach_answered_200_with_an_html_page_is_an_unknown_outcome_never_resent(
        fin_sandbox: Any, world: dict[str, Any], faults: Callable[[dict[str, Any]], None]) -> None:
    faults({"html_200": {"endpoints": ["attach"]}})
    customer_id, party_id = _ids(world)

    async def go(c: FinClient) -> None:
        await c.attach(customer_id, _passport_body(party_id, await _upload(c, customer_id)))

    with pytest.raises(OutcomeUnknown) as caught:
        asyncio.run(_with_client(fin_sandbox.url, go))
    assert caught.value.reason_code is Reason.unexpected_answer
    assert "not JSON (content type text/html)" in str(caught.value) and caught.value.status_code == 200
    record = sandbox_record(fin_sandbox.url)
    assert record["requests"]["attach"] == 1 and len(record["attachments"]) == 1  # applied once, not sent again


@pytest.mark.parametrize("endpoint", ["token", "customer", "upload"])
def test_an_html_page_answered_200_elsewhere_is_an_api_error(
        fin_sandbox: Any, world: dict[str, Any], faults: Callable[[dict[str, Any]], None], endpoint: str) -> None:
    faults({"html_200": {"endpoints": [endpoint]}})
    customer_id, _ = _ids(world)

    async def go(c: FinClient) -> None:
        await (c.get_customer(customer_id) if endpoint == "customer" else
               _upload(c, customer_id) if endpoint == "upload" else c.authenticate())

    with pytest.raises(TerminalError) as caught:
        asyncio.run(_with_client(fin_sandbox.url, go))
    assert str(caught.value) == f"{endpoint}: the answer is not JSON (content type text/html) (HTTP 200)"
    assert caught.value.reason_code is Reason.api_error
    assert sandbox_record(fin_sandbox.url)["requests"][endpoint] == 1


@pytest.mark.parametrize(("endpoint", "interval_s"), [("customer", 0.05), ("attach", 0.5)])
def test_an_answer_dribbled_a_byte_at_a_time_ends_at_the_request_timeout(
        fin_sandbox: Any, world: dict[str, Any], faults: Callable[[dict[str, Any]], None], endpoint: str,
        interval_s: float) -> None:
    # the customer answer (~600 bytes) would take ~30 s, the attach's (11 bytes) ~5.5 s; each read waits far less
    # than the timeout
    faults({"dribble": {"endpoints": [endpoint], "interval_s": interval_s}})
    customer_id, party_id = _ids(world)
    spent: list[float] = []

    async def go(c: FinClient) -> None:
        body = _passport_body(party_id, await _upload(c, customer_id)) if endpoint == "attach" else None
        started = time.monotonic()
        try:
            await (c.attach(customer_id, body) if body else c.get_customer(customer_id))
        finally:
            spent.append(time.monotonic() - started)

    expected = OutcomeUnknown if endpoint == "attach" else TransientError
    with pytest.raises(expected):
        asyncio.run(_with_client(fin_sandbox.url, go, timeout_s=3))
    attempts = 1 if endpoint == "attach" else ATTEMPTS  # an attach whose answer is cut is never sent again
    assert attempts * 3 <= spent[0] < attempts * 3 + 2, spent


def test_a_huge_customer_answer_is_refused_at_its_cap_without_being_read(
        fin_sandbox: Any, world: dict[str, Any], faults: Callable[[dict[str, Any]], None]) -> None:
    faults({"huge_body": {"endpoints": ["customer"], "mib": 300}})
    customer_id, _ = _ids(world)

    tracemalloc.start()
    try:
        with pytest.raises(TerminalError) as caught:
            asyncio.run(_with_client(fin_sandbox.url, lambda c: c.get_customer(customer_id), timeout_s=30))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value).startswith("customer: the answer is larger than its cap of 8 MiB")
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("literal", ["Infinity", "NaN", "-1", "0", "1e400"])
def test_a_token_lifetime_that_is_no_finite_positive_number_is_an_api_error(
        fin_sandbox: Any, world: dict[str, Any], faults: Callable[[dict[str, Any]], None], literal: str) -> None:
    faults({"token_ttl_literal": literal})

    with pytest.raises(TerminalError) as caught:
        asyncio.run(_with_client(fin_sandbox.url, lambda c: c.authenticate()))
    assert str(caught.value).startswith("token: ") and caught.value.reason_code is Reason.api_error
    assert sandbox_record(fin_sandbox.url)["requests"]["token"] == 1


@pytest.mark.parametrize("literal", ["0.5", "0.001"])
def test_a_token_lifetime_under_a_second_is_an_api_error_not_a_renewal_before_every_request(
        fin_sandbox: Any, world: dict[str, Any], faults: Callable[[dict[str, Any]], None], literal: str) -> None:
    customer_id, _ = _ids(world)
    faults({"token_ttl_literal": literal})

    async def go(c: FinClient) -> None:
        for _ in range(5):
            await c.get_customer(customer_id)

    with pytest.raises(TerminalError, match=r"^token: .*less than a second") as caught:
        asyncio.run(_with_client(fin_sandbox.url, go))
    assert caught.value.reason_code is Reason.api_error
    assert sandbox_record(fin_sandbox.url)["requests"]["token"] == 1


def test_a_token_lifetime_of_infinity_mid_run_fails_the_request_it_was_for(
        fin_sandbox: Any, world: dict[str, Any], faults: Callable[[dict[str, Any]], None]) -> None:
    customer_id, _ = _ids(world)

    async def go(c: FinClient) -> None:
        await c.get_customer(customer_id)
        # every token issued so far dies, and the next ones say they live for ever
        httpx.post(f"{fin_sandbox.url}/_sandbox/faults",
                   json={"token_ttl_literal": "Infinity", "token_expiry_seconds": 0}).raise_for_status()
        await c.get_customer(customer_id)

    with pytest.raises(TerminalError, match=r"^token: the answer holds Infinity, which is no finite number"):
        asyncio.run(_with_client(fin_sandbox.url, go))


def test_an_attach_answer_past_its_cap_is_an_unknown_outcome_never_resent(
        fin_sandbox: Any, world: dict[str, Any], faults: Callable[[dict[str, Any]], None]) -> None:
    faults({"huge_body": {"endpoints": ["attach"], "mib": 1}})
    customer_id, party_id = _ids(world)

    async def go(c: FinClient) -> None:
        await c.attach(customer_id, _passport_body(party_id, await _upload(c, customer_id)))

    with pytest.raises(OutcomeUnknown) as caught:
        asyncio.run(_with_client(fin_sandbox.url, go))
    assert caught.value.reason_code is Reason.unexpected_answer
    assert str(caught.value) == "attach: the answer is larger than its cap of 256 KiB (HTTP 200)"
    record = sandbox_record(fin_sandbox.url)
    assert record["requests"]["attach"] == 1 and len(record["attachments"]) == 1
