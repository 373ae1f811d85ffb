"""An attach sent again after an answer that proves it was not applied (409 "attach in progress", a stale token's
401, a refused connection) is recorded in flight again just before that POST leaves: the send time a later run
compares the parties' status with is the one of the POST that may have been applied, not of the first try."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from pydantic import SecretStr

from connectors.fin import FinClient
from connectors.rate_limiter import EndpointLimiters
from tests.support.fin_answers import PostAnswers

CUSTOMER = "6f1c2a3b-1111-4222-8333-444455556666"


async def _attach(first: str) -> list[str]:
    events: list[str] = []

    def answer(post: int) -> httpx.Response:
        if post == 1:
            events.append("post refused")
            if first == "409":
                return httpx.Response(409, json={"error": "attach in progress"})
            if first == "401":
                return httpx.Response(401, json={"error": "token expired"})
            raise httpx.ConnectError("refused")
        events.append("post applied")
        return httpx.Response(200, json={"data": {}})

    async def no_sleep(_: float) -> None:
        return None

    transport = httpx.MockTransport(PostAnswers(answer))
    async with httpx.AsyncClient(base_url="http://fin.test", transport=transport) as http:
        fin = FinClient(http, client_id="id", client_secret=SecretStr("secret"), limiter=EndpointLimiters(1000),
                        rng=random.Random(1), sleep=no_sleep)

        async def before_send(after_conflict: bool) -> None:
            events.append("recorded in flight" + (" after a 409" if after_conflict else ""))

        await fin.attach(CUSTOMER, {"parties": []}, before_send=before_send)
    return events


@pytest.mark.parametrize("first", ["409", "401", "connect"])
def test_an_attach_sent_again_is_recorded_in_flight_again_just_before_it_leaves(first: str) -> None:
    events = asyncio.run(_attach(first))
    # the POST that may be applied leaves right after a record of its own (its send time): a status moved
    # between the first try and this one is not read as proof that it was applied
    after_409 = " after a 409" if first == "409" else ""
    assert events[-2:] == ["recorded in flight" + after_409, "post applied"], events
    assert events[0] == "recorded in flight"  # the first POST went after no 409


def test_an_attach_whose_in_flight_record_is_refused_never_leaves() -> None:
    from connectors.errors import LedgerUnavailable

    api = PostAnswers(lambda _: httpx.Response(200, json={"data": {}}))

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url="http://fin.test", transport=httpx.MockTransport(api)) as http:
            fin = FinClient(http, client_id="id", client_secret=SecretStr("secret"),
                            limiter=EndpointLimiters(1000), rng=random.Random(1))

            async def refused(_: bool) -> None:
                raise LedgerUnavailable("the ledger's store refused a write (OSError)")

            with pytest.raises(LedgerUnavailable):
                await fin.attach(CUSTOMER, {"parties": []}, before_send=refused)

    asyncio.run(scenario())
    assert api.posts == 0
