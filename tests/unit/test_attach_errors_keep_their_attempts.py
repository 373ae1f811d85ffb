"""An attach error keeps the attempts it was raised with; the report counts every attempt of the request, those
of a POST whose answer was lost and sent again included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from connectors.errors import ApiError, OutcomeUnknown, Refused, TransientError
from connectors.fin import FinClient
from connectors.ledger import Ledger
from connectors.objects import ObjectStore
from connectors.s3 import Location
from flows.attach_once import Attacher
from flows.uploads import Uploaded
from tests.unit.helpers import CUST, PARTY
from transforms.codes import Status
from transforms.exactly_once import DocState, FileContent, Policy
from transforms.models import Document, FileRef
from transforms.outcomes import Outcomes
from transforms.thresholds import FailureBudget

SOURCE = "s3://kyc/docs/passport.pdf"
STILL_INITIATED = {"associated_parties": [{"id": PARTY, "verification": {"status": "INITIATED"}}]}


class _AnswersInTurn:
    """An API whose attaches fail in turn with the given errors, each after its POST left."""

    max_attempts = 6

    def __init__(self, errors: list[ApiError]) -> None:
        self.errors = errors

    async def attach(self, customer_id: str, body: dict[str, Any], *, before_send: Any = None) -> int:
        await before_send(False)  # no 409 was waited out before this POST
        raise self.errors.pop(0)

    async def get_customer(self, customer_id: str) -> dict[str, Any]:
        return STILL_INITIATED


@pytest.mark.parametrize("last", [
    TransientError("attach: gave up after 2 attempts (503)", status_code=503, attempts=2),
    Refused("attach: invalid", status_code=422, attempts=2),
], ids=["gave-up", "refused"])
def test_an_error_after_a_resend_keeps_its_attempts_and_the_row_counts_every_one(last: ApiError,
                                                                                 tmp_path: Path) -> None:
    fin = _AnswersInTurn([OutcomeUnknown("attach: outcome unknown (500)", status_code=500, attempts=1), last])
    ledger = Ledger(ObjectStore(None), Location(None, str(tmp_path / "_documents")), linger_s=0).load([CUST])
    out = Outcomes()
    # the operator trusts INITIATED: the lost first POST is provably not applied and is sent again
    attacher = Attacher(cast(FinClient, fin), ledger, out, FailureBudget(), run_id="r",
                        policy=Policy(trust_initiated_as_not_applied=True), settle_delay_s=0, max_parties=10)
    doc = Document(CUST, PARTY, None, "identifying", "PASSPORT", "P1234567", "USA", "2021-03-10", "2031-03-10",
                   (FileRef(1, SOURCE),))
    files = {SOURCE: Uploaded("/files/p.pdf", FileContent("a" * 64, "etag", 10))}

    asyncio.run(attacher.customer(CUST, [doc], files, STILL_INITIATED))

    assert last.attempts == 2  # as it was raised
    assert (out.rows[1].status, out.rows[1].attempts, out.rows[1].http_status) == (
        Status.failed, 3, last.status_code)
    assert [r.state for r in ledger.documents.values()] == [DocState.failed]
