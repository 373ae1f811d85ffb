"""A resend after a 409 "attach in progress": the other attach may move the party within the resend's own second,
so a status stamped to that whole second is not credited to the resend, neither by the run that sent it nor by a
later run settling its in-flight record."""

from __future__ import annotations

import asyncio
import io
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.attach_flow import run_attach
from flows.commands.demo import CLIENT_ID, CLIENT_SECRET, demo_rows, demo_world
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record, valid_rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

BUSY_S = 3.0  # how long the other attach keeps the customer busy (409) after it was applied


def _wait_for(sandbox_url: str, ready: Callable[[dict[str, Any]], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready(sandbox_record(sandbox_url)):
        assert time.monotonic() < deadline, f"the sandbox never showed {what}"
        time.sleep(0.02)


def _other_attach(sandbox_url: str, customer_id: str, party_id: str) -> None:
    """Another client attaches a passport to the party while the run waits for the customer: the attach is
    applied at once and answered ``BUSY_S`` later; then the run's own attaches fail before any work (500)."""
    _wait_for(sandbox_url, lambda r: r["held"] >= 1, "the run waiting for the customer")
    with httpx.Client(base_url=sandbox_url, timeout=30) as http:
        token = http.post("/v1/oauth/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        uploaded = http.post("/v1/customers/upload", data={"customer_id": customer_id}, headers=auth,
                             files={"file": ("other.pdf", io.BytesIO(b"%PDF-1.4\n%%EOF\n"), "application/pdf")})
        uri = uploaded.json()["data"]["files"][0]["file"]
        body = {"associated_party_attachments": [{"associated_party_id": party_id, "identifying_documents": [
            {"type": "PASSPORT", "number": "A12345678", "country": "USA", "issue_date": "2020-01-15",
             "expiry_date": "2030-01-15", "files": [{"uri": uri}]}]}]}
        # Applied just after a second begins: the run's resend, once the 409s end, falls in the second in which
        # the party moves (BUSY_S after it was applied, give or take the half second of ``late``).
        time.sleep(1.05 - math.modf(time.time())[0])
        other = threading.Thread(target=http.post, args=(
            f"/v2/customers/{customer_id}/associated-parties/individual/attach",), kwargs={"json": body,
                                                                                          "headers": auth})
        other.start()
        _wait_for(sandbox_url, lambda r: len(r["attachments"]) == 1, "the other attach applied")
        # new faults also let the run's held request go on
        httpx.post(f"{sandbox_url}/_sandbox/faults", json={
            "errors": {"share": 1.0, "statuses": [500], "endpoints": ["attach"]}}).raise_for_status()
        other.join()


@pytest.mark.parametrize("late", [0.0, 0.5], ids=["moved-before-the-run-looked", "moved-after-the-run-looked"])
def test_a_status_stamped_in_the_second_of_a_resend_after_a_409_is_not_credited_to_it(
    fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, late: float
) -> None:
    world = demo_world(customers=1)
    world.update(status_moves_after_s=BUSY_S + late, updated_at_whole_seconds=True)
    rows, files = demo_rows(world, bucket)
    passport = rows[0]  # the first party's passport
    assert passport["document_type"] == "PASSPORT"
    key = passport["s3_uri"].split("/", 3)[3]
    load_world(fin_sandbox.url, world, {"slow": {"share": 1.0, "seconds": BUSY_S, "endpoints": ["attach"]},
                                        "hold": {"endpoints": ["customer"]}})
    manifest = put_scenario(bucket, [passport], {key: files[key]})
    api_env(monkeypatch, fin_sandbox.url, tmp_path, KYC_ATTACH_SETTLE_DELAY_S="0")  # default trust settings
    # 409s are waited out in short steps, so the resend leaves within the second the other attach ends in
    monkeypatch.setattr("connectors.fin.conflict_delay", lambda *_, **__: 0.05)
    other = threading.Thread(target=_other_attach, args=(fin_sandbox.url, passport["customer_id"],
                                                         passport["associated_party_id"]))
    other.start()

    first = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="first"))
    other.join()

    record = sandbox_record(fin_sandbox.url)
    assert record["requests"]["attach"] >= 3  # the other attach, a 409 at least, the resend
    assert len(record["attachments"]) == 1  # only the other attach was applied
    [row] = valid_rows(read_report(first))
    assert (row["status"], row["reason_code"]) == ("unknown", "outcome_unknown"), row
    time.sleep(late + 0.5)  # the move is due
    httpx.post(f"{fin_sandbox.url}/_sandbox/faults", json={}).raise_for_status()

    second = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id="second"))

    [row] = valid_rows(read_report(second))
    assert (row["status"], row["reason_code"]) == ("unknown", "outcome_unknown"), row
    assert sandbox_record(fin_sandbox.url)["requests"]["attach"] == record["requests"]["attach"]  # never resent
