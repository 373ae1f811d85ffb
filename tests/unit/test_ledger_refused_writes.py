"""The ledger when its store refuses a write: no caller is told a record is durable that is not."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from connectors.errors import LedgerUnavailable
from connectors.ledger import Ledger, Send
from connectors.s3 import Location
from transforms.exactly_once import partition_of


class RefusingStore:
    """Writes succeed except under the refused partitions (the store's client raising, as boto3 does)."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused
        self.written: dict[str, bytes] = {}

    def write(self, loc: Location, data: bytes, **_: Any) -> None:
        if loc.key.split("/")[-2] in self.refused:
            raise OSError("503 SlowDown")
        self.written[loc.key] = data


def _customers_in_two_partitions() -> tuple[str, str]:
    ids = [f"customer-{i}" for i in range(50)]
    first = ids[0]
    second = next(c for c in ids if partition_of(c) != partition_of(first))
    return first, second


def _ledger(store: RefusingStore) -> Ledger:
    return Ledger(store, Location("bucket", "reports/_ledger/_documents"), linger_s=0.01)  # type: ignore[arg-type]


def test_refused_partition_fails_its_callers_and_every_durable_write_after_it() -> None:
    ok, refused = _customers_in_two_partitions()
    store = RefusingStore({partition_of(refused)})
    ledger = _ledger(store)

    async def scenario() -> list[Any]:
        # two sends' records: one partition is written, the other refused
        return await asyncio.gather(
            ledger.sending(ok, {"d1": "p1"}, Send("r")),
            ledger.sending(refused, {"d2": "p2"}, Send("r")),
            return_exceptions=True)

    results = asyncio.run(scenario())

    assert results[0] is None  # its record is durable: it may send
    assert isinstance(results[1], LedgerUnavailable)
    assert "SlowDown" not in str(results[1]) and "OSError" in str(results[1])  # the type, never the text
    assert ledger.refused is not None
    written = len(store.written)
    with pytest.raises(LedgerUnavailable):  # the partition that worked does not matter any more
        asyncio.run(ledger.upload_done(ok, "s3://b/k", "etag", "uri"))
    assert len(store.written) == written


def test_record_carried_by_a_refused_commit_of_another_caller_is_not_taken_as_durable() -> None:
    customer, _ = _customers_in_two_partitions()
    store = RefusingStore({partition_of(customer)})
    ledger = _ledger(store)

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(ledger.sending(customer, {f"d{i}": "p"}, Send("r"))
                                      for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, LedgerUnavailable) for r in asyncio.run(scenario()))


def test_upload_records_are_written_before_upload_done_returns() -> None:
    store = RefusingStore(set())
    ledger = _ledger(store)

    asyncio.run(ledger.upload_done("c1", "s3://b/k", "etag", "fin://uri"))

    assert any(b'"k":"upload"' in data for data in store.written.values())


def test_an_answered_attach_whose_record_rode_a_refused_commit_is_written_by_the_flush_after_it() -> None:
    """The attached record of a request Fin answered 200 waits (not durable) for the next commit; when that commit
    is refused (a 503 burst while another request's in-flight record is written), the flush at the run's end,
    with the store healthy again, still writes it: else the next run finds that document only in flight and
    leaves it unknown (and ``--resend-unknown`` attaches it twice). The refused request's own in-flight record is
    not written: that request never left."""
    customer, _ = _customers_in_two_partitions()
    store = RefusingStore(set())
    ledger = _ledger(store)

    async def scenario() -> None:
        await ledger.sending(customer, {"answered": "p1"}, Send("r", "q1"))
        await ledger.answered(customer, {"answered": "p1"}, Send("r", "q1"), 200)
        store.refused = {partition_of(customer)}
        with pytest.raises(LedgerUnavailable):
            await ledger.sending(customer, {"refused": "p2"}, Send("r", "q2"))
        store.refused = set()
        await ledger.flush()

    asyncio.run(scenario())

    lines = [json.loads(line) for data in store.written.values() for line in data.splitlines()]
    assert [(r["id"], r["s"]) for r in lines] == [("answered", "in_flight"), ("answered", "attached")]
