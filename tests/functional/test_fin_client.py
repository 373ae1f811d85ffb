"""The Fin API client against the sandbox over HTTP: tokens, throttling, retries, streamed uploads."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.aiohttp_transport import Transport
from connectors.errors import OutcomeUnknown, Refused, SetupError, TerminalError, Throttled, TransientError
from connectors.fin import FinClient
from connectors.rate_limiter import EndpointLimiters
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_world
from flows.commands.demo_samples import sample_pdf
from tests.support.scenario import load_world, sandbox_record
from transforms.breaker import CircuitBreaker

SetFaults = Callable[[dict[str, Any]], None]


def _client(http: httpx.AsyncClient, secret: str = CLIENT_SECRET, **kw: Any) -> FinClient:
    return FinClient(http, client_id=CLIENT_ID, client_secret=SecretStr(secret), limiter=EndpointLimiters(1000),
                     rng=random.Random(1), **kw)


def _chunks(data: bytes, size: int = 4096) -> Any:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i:i + size]
    return gen


async def _with_client(url: str, body: Any, **kw: Any) -> Any:
    # The transport production uses (flows.runtime.fin_client): aiohttp under the httpx API.
    async with httpx.AsyncClient(base_url=url, timeout=10, transport=Transport()) as http:
        return await body(_client(http, **kw))


def _upload_then_attach_passport(customer_id: str, party_id: str) -> Callable[[FinClient], Awaitable[None]]:
    """A client body that uploads a PDF and attaches it to the party as a passport (a party needs one
    identifying document in every attach)."""
    data = sample_pdf("passport")

    async def go(c: FinClient) -> None:
        uri, _ = await c.upload(customer_id, filename="b.pdf", content_type="application/pdf", size=len(data),
                                chunks=_chunks(data))
        passport = {"type": "PASSPORT", "number": "P1234567", "country": "USA", "issue_date": "2021-03-10",
                    "expiry_date": "2031-03-10", "files": [{"uri": uri}]}
        body = {"associated_party_attachments": [{"associated_party_id": party_id, "identifying_documents": [passport],
                "address_documents": [], "supporting_documents": []}]}
        await c.attach(customer_id, body)

    return go


@pytest.fixture()
def world(fin_sandbox: Any) -> dict[str, Any]:
    """A one-customer world loaded in the sandbox (its record emptied, no faults)."""
    w = demo_world(customers=1)
    load_world(fin_sandbox.url, w)
    return w


@pytest.fixture()
def sandbox_faults(fin_sandbox: Any, world: dict[str, Any]) -> SetFaults:
    """Sets the sandbox's faults (reloading the world, which empties the record)."""
    return lambda faults: load_world(fin_sandbox.url, world, faults)


@pytest.fixture()
def customer_id(world: dict[str, Any]) -> str:
    """The world's one customer."""
    cid: str = world["customers"][0]["customer_id"]
    return cid


@pytest.fixture()
def party_id(world: dict[str, Any]) -> str:
    """The first associated party of the world's one customer."""
    pid: str = world["customers"][0]["associated_parties"][0]["id"]
    return pid


def test_bad_credentials_are_a_setup_error(fin_sandbox: Any, world: dict[str, Any]) -> None:
    with pytest.raises(SetupError, match="credentials"):
        asyncio.run(_with_client(fin_sandbox.url, lambda c: c.authenticate(), secret="wrong"))


def test_upload_streams_file_and_returns_uri_owned_by_customer(fin_sandbox: Any, customer_id: str) -> None:
    data = sample_pdf("streamed", pad_to=300_000)

    async def go(c: FinClient) -> tuple[str, int]:
        return await c.upload(customer_id, filename="x.pdf", content_type="application/pdf", size=len(data),
                              chunks=_chunks(data))

    uri, attempts = asyncio.run(_with_client(fin_sandbox.url, go))
    assert uri.startswith("/") and attempts == 1
    uploads = sandbox_record(fin_sandbox.url)["uploads"]
    assert [(u["customer_id"], u["uri"], u["size"]) for u in uploads] == [(customer_id, uri, len(data))]


def test_expired_tokens_are_renewed_transparently(fin_sandbox: Any, sandbox_faults: SetFaults,
                                                  customer_id: str) -> None:
    sandbox_faults({"token_expiry_seconds": 0.2})

    async def go(c: FinClient) -> tuple[list[str], dict[str, Any]]:
        out = []
        for _ in range(3):
            out.append((await c.get_customer(customer_id))["customer_id"])
            await asyncio.sleep(0.3)
        return out, c.stats.as_dict()

    got, stats = asyncio.run(_with_client(fin_sandbox.url, go))
    assert got == [customer_id] * 3
    # Renewed, not merely lucky: each call after the first found its token expired, so tokens were asked for
    # again (up front, when the client knows the expiry, or after a 401).
    assert stats["requests"]["token"] >= 3


def test_a_request_queued_longer_than_its_token_lives_takes_a_live_one_when_its_turn_comes() -> None:
    # Tokens say they live 1 s (renewed at 0.8 s); one slot; the API holds each request 0.5 s. The fourth
    # request waits 1.5 s for its slot: a token taken before that wait is dead on arrival (401).
    from sandbox.app import create_app
    from sandbox.server import SandboxServer
    from sandbox.world import World

    world = demo_world(customers=1)
    customer = world["customers"][0]["customer_id"]
    with SandboxServer(create_app(World.model_validate(world), admin=True, token_ttl_seconds=1)) as server:
        load_world(server.url, world, {"latency": {"ms": 500, "endpoints": ["customer"]}})

        async def go(c: FinClient) -> tuple[list[str], dict[str, Any]]:
            got = await asyncio.gather(*(c.get_customer(customer) for _ in range(4)))
            return [g["customer_id"] for g in got], c.stats.as_dict()

        got, stats = asyncio.run(_with_client(server.url, go, max_in_flight=1))
    assert got == [customer] * 4
    assert "401" not in stats["statuses"], stats["statuses"]


def test_tokens_that_die_before_their_stated_expiry_are_renewed_every_time(
        fin_sandbox: Any, sandbox_faults: SetFaults, customer_id: str) -> None:
    # The API ends tokens after 0.5 s though it says they live a day; each request takes 0.3 s and a third of
    # them are answered 5xx, so one request's retries meet several dead tokens. None of that fails a request,
    # and the client learns the real lifetime: 401s stop after the first few.
    sandbox_faults({"token_expiry_seconds": 0.5, "latency": {"ms": 300, "endpoints": ["customer"]},
                    "errors": {"share": 0.33, "endpoints": ["customer"]}, "seed": 3})

    async def go(c: FinClient) -> tuple[list[str], dict[str, Any]]:
        got = await asyncio.gather(*(c.get_customer(customer_id) for _ in range(12)))
        return [g["customer_id"] for g in got], c.stats.as_dict()

    got, stats = asyncio.run(_with_client(fin_sandbox.url, go, max_in_flight=2, max_attempts=30))
    assert got == [customer_id] * 12
    assert stats["requests"]["token"] >= 4  # 12 requests of 0.3 s on 2 slots span ~2 s: four token lives
    assert stats["statuses"].get("401", 0) <= 3, stats["statuses"]


@pytest.mark.parametrize("retry_after", [True, False])
def test_429_is_retried_with_and_without_retry_after(fin_sandbox: Any, sandbox_faults: SetFaults, customer_id: str,
                                                       retry_after: bool) -> None:
    sandbox_faults({"rate_limit": {"rps": 5, "burst": 1, "retry_after": retry_after, "endpoints": ["customer"]}})

    async def go(c: FinClient) -> int:
        await asyncio.gather(*(c.get_customer(customer_id) for _ in range(4)))
        return c.stats.statuses["429"]

    assert asyncio.run(_with_client(fin_sandbox.url, go, max_attempts=20)) >= 1


def test_429s_spend_no_attempts(fin_sandbox: Any, sandbox_faults: SetFaults, customer_id: str) -> None:
    # a bucket of one request at 20/s, no Retry-After: most of 8 requests fired together meet 429s first
    sandbox_faults({"rate_limit": {"rps": 20, "burst": 1, "retry_after": False, "endpoints": ["customer"]}})

    async def go(c: FinClient) -> tuple[int, list[int]]:
        attempts = []
        for _ in range(2):
            found = await asyncio.gather(*(c._request("customer", "GET", f"/v2/customers/{customer_id}")
                                           for _ in range(4)))
            attempts += [n for _, n in found]
        return c.stats.statuses["429"], attempts

    throttled, attempts = asyncio.run(_with_client(fin_sandbox.url, go, max_attempts=1))
    assert throttled >= 3  # they were throttled, and yet, with one attempt each, every request got through
    assert attempts == [1] * 8


def test_retry_after_is_waited_out_before_the_next_try(fin_sandbox: Any, sandbox_faults: SetFaults,
                                                       customer_id: str) -> None:
    # one request every 2 s: the second is refused with "Retry-After: 2"
    sandbox_faults({"rate_limit": {"rps": 0.5, "burst": 1, "retry_after": True, "endpoints": ["customer"]}})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    async def go(c: FinClient) -> int:
        await c.get_customer(customer_id)
        await c.get_customer(customer_id)
        return c.stats.statuses["429"]

    assert asyncio.run(_with_client(fin_sandbox.url, go, sleep=sleep)) == 1
    assert max(waits) >= 2.0


def test_throttled_past_the_budget_is_a_throttled_error(fin_sandbox: Any, sandbox_faults: SetFaults,
                                                        customer_id: str) -> None:
    sandbox_faults({"rate_limit": {"rps": 0.01, "burst": 1, "retry_after": False, "endpoints": ["customer"]}})

    async def go(c: FinClient) -> None:
        await c.get_customer(customer_id)
        await c.get_customer(customer_id)  # the bucket refills in 100 s: far past the budget

    started = time.monotonic()
    with pytest.raises(Throttled) as caught:
        asyncio.run(_with_client(fin_sandbox.url, go, throttle_budget_s=1.0))
    assert 1.0 <= time.monotonic() - started < 30
    assert caught.value.status_code == 429 and caught.value.attempts == 1


def test_attach_answered_500_after_commit_is_outcome_unknown(fin_sandbox: Any, sandbox_faults: SetFaults,
                                                              customer_id: str, party_id: str) -> None:
    sandbox_faults({"commit_then_fail": {"share": 1.0, "mode": "500"}})

    with pytest.raises(OutcomeUnknown):
        asyncio.run(_with_client(fin_sandbox.url, _upload_then_attach_passport(customer_id, party_id)))
    assert len(sandbox_record(fin_sandbox.url)["attachments"]) == 1  # sent once, never blindly again


@pytest.mark.parametrize("mode", ["500", "drop"])
def test_attach_whose_answer_is_lost_after_commit_is_never_resent(fin_sandbox: Any, sandbox_faults: SetFaults,
                                                                    customer_id: str, party_id: str,
                                                                    mode: str) -> None:
    """A dropped connection after the attach was sent reads as outcome unknown, not as 'never sent'."""
    sandbox_faults({"commit_then_fail": {"share": 1.0, "mode": mode}})

    with pytest.raises(OutcomeUnknown):
        asyncio.run(_with_client(fin_sandbox.url, _upload_then_attach_passport(customer_id, party_id)))
    record = sandbox_record(fin_sandbox.url)
    assert len(record["attachments"]) == 1 and record["requests"]["attach"] == 1


def test_connection_refused_is_a_connect_error_and_a_drop_is_not() -> None:
    import aiohttp

    from connectors.aiohttp_transport import httpx_error

    assert httpx_error(aiohttp.ServerDisconnectedError()) is httpx.ReadError
    assert httpx_error(aiohttp.ConnectionTimeoutError()) is httpx.ConnectTimeout
    assert httpx_error(aiohttp.SocketTimeoutError()) is httpx.ReadTimeout

    async def go() -> type[BaseException]:
        async with httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=Transport()) as http:
            try:
                await http.get("/")
            except httpx.TransportError as exc:
                return type(exc)
        raise AssertionError("a closed port answered")

    assert asyncio.run(go()) is httpx.ConnectError


def test_validation_error_is_terminal_and_names_no_value(fin_sandbox: Any, customer_id: str, party_id: str) -> None:
    body = {"associated_party_attachments": [{"associated_party_id": party_id, "identifying_documents": [
        {"type": "PASSPORT", "number": "SECRET-NUMBER-123", "country": "XXX", "issue_date": "2020-01-01",
         "expiry_date": "2030-01-01", "files": [{"uri": "/nope.pdf"}]}]}]}

    with pytest.raises(TerminalError) as caught:
        asyncio.run(_with_client(fin_sandbox.url, lambda c: c.attach(customer_id, body)))
    assert caught.value.status_code in (400, 403)
    assert "SECRET-NUMBER-123" not in str(caught.value)


async def _no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


def test_token_requests_go_through_the_one_request_loop(fin_sandbox: Any, sandbox_faults: SetFaults) -> None:
    """A token request is retried on the one table of retryable statuses and feeds the circuit breaker, like
    every other request (a second loop for tokens skipped the breaker)."""
    sandbox_faults({"errors": {"share": 1.0, "statuses": [503], "endpoints": ["token"]}})

    async def go(c: FinClient) -> tuple[int, int]:
        with pytest.raises(TransientError):
            await c.authenticate()
        return c.stats.requests["token"], c.breaker.opened

    sent, opened = asyncio.run(_with_client(fin_sandbox.url, go, max_attempts=3, sleep=_no_wait,
                                            breaker=CircuitBreaker(threshold=2, base_pause_s=0.01)))
    assert sent == 3  # every attempt the client allows, then given up
    assert opened == 1  # two 503s in a row opened the breaker


def test_a_400_is_refused_with_the_field_paths_it_names(fin_sandbox: Any, customer_id: str, party_id: str) -> None:
    """A party with only a utility bill is refused (400, nothing applied); the error carries the path, no value."""
    data = sample_pdf("bill")

    async def go(c: FinClient) -> None:
        uri, _ = await c.upload(customer_id, filename="b.pdf", content_type="application/pdf", size=len(data),
                                chunks=_chunks(data))
        bill = {"type": "UTILITY_BILL", "files": [{"uri": uri}]}
        await c.attach(customer_id, {"associated_party_attachments": [{"associated_party_id": party_id,
                                                                        "address_documents": [bill]}]})

    with pytest.raises(Refused) as caught:
        asyncio.run(_with_client(fin_sandbox.url, go))
    assert caught.value.status_code == 400 and caught.value.reason_code == "api_validation_failed"
    assert list(caught.value.field_errors) == ["associated_party_attachments[0].identifying_documents"]
    assert sandbox_record(fin_sandbox.url)["attachments"] == []


def test_a_customer_look_up_does_not_queue_behind_uploads_holding_every_slot(
        fin_sandbox: Any, sandbox_faults: SetFaults, customer_id: str) -> None:
    # Uploads take 1.5 s each and fill the two upload slots; a look-up (or an attach, paced by its own limiter)
    # must leave when its turn comes, not when an upload ends.
    sandbox_faults({"latency": {"distribution": "fixed", "ms": 1500, "endpoints": ["upload"]}})
    data = sample_pdf("slow", pad_to=10_000)

    async def go(c: FinClient) -> float:
        await c.authenticate()
        uploads = [asyncio.create_task(c.upload(customer_id, filename=f"{i}.pdf", content_type="application/pdf",
                                                size=len(data), chunks=_chunks(data))) for i in range(2)]
        await asyncio.sleep(0.3)  # both uploads hold their slots now
        started = time.monotonic()
        await c.get_customer(customer_id)
        waited = time.monotonic() - started
        await asyncio.gather(*uploads)
        return waited

    waited = asyncio.run(_with_client(fin_sandbox.url, go, max_in_flight=2))
    assert waited < 1.0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_an_attach_answered_with_a_redirect_is_an_unknown_outcome_never_followed_nor_resent(status: int) -> None:
    # A gateway may apply the POST and answer 303 See Other (post/redirect/get), or send it elsewhere: either way
    # the redirect says nothing of whether the attach was applied, and it is followed to no other host.
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    seen: list[str] = []

    async def token(_request: web.Request) -> web.Response:
        return web.json_response({"access_token": "a", "refresh_token": "r", "access_token_ttl": 3600})

    async def attach(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(status=status, headers={"Location": "http://127.0.0.1:9/elsewhere"})

    async def go() -> OutcomeUnknown:
        app = web.Application()
        app.router.add_post("/v1/oauth/token", token)
        app.router.add_post("/v2/customers/{cid}/associated-parties/individual/attach", attach)
        async with TestServer(app, host="127.0.0.1") as server, \
                httpx.AsyncClient(base_url=str(server.make_url("")), timeout=5, transport=Transport()) as http:
            with pytest.raises(OutcomeUnknown) as caught:
                await _client(http, sleep=_no_wait).attach("c1", {"associated_party_attachments": []})
        return caught.value

    unknown = asyncio.run(go())
    assert unknown.attempts == 1 and seen == ["/v2/customers/c1/associated-parties/individual/attach"]


@pytest.mark.parametrize("access_token", ["a\r\nX-Injected: 1", "tok\u00e9n"])
def test_a_token_no_header_can_carry_is_an_api_error_and_no_request_is_sent_with_it(access_token: str) -> None:
    # A gateway's token with a line break (a header injected into every request) or a non-ASCII character: the
    # HTTP layer refuses to send it (a ValueError that ended the whole run); it is the token answer's fault.
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    customers: list[str] = []

    async def token(_request: web.Request) -> web.Response:
        return web.json_response({"access_token": access_token, "refresh_token": "r", "access_token_ttl": 3600})

    async def customer(request: web.Request) -> web.Response:
        customers.append(request.path)
        return web.json_response({"data": {"associated_parties": []}})

    async def go() -> TerminalError:
        app = web.Application()
        app.router.add_post("/v1/oauth/token", token)
        app.router.add_get("/v2/customers/{cid}", customer)
        async with TestServer(app, host="127.0.0.1") as server, \
                httpx.AsyncClient(base_url=str(server.make_url("")), timeout=5, transport=Transport()) as http:
            with pytest.raises(TerminalError) as caught:
                await _client(http, sleep=_no_wait).get_customer("c1")
        return caught.value

    refused = asyncio.run(go())
    assert str(refused).startswith("token: the answer's access_token holds a character a header cannot carry")
    assert access_token not in str(refused) and customers == []
