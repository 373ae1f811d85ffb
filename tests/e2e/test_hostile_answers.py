"""Whole runs against a sandbox whose answers are not the API's: an attach answered 200 with a gateway's HTML page,
a token whose lifetime is ``Infinity`` in the middle of a run."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.support.scenario import DemoScenario, load_world, read_report

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

ATTACHED_PER_CUSTOMER = 3  # demo_rows: a passport, a two-sided national id, a utility bill; the rest are bad rows


def test_an_attach_answered_with_a_gateway_page_ends_unknown_and_the_next_run_settles_it_from_the_status(
        demo_scenario: Callable[..., DemoScenario]) -> None:
    faults = {"html_200": {"endpoints": ["attach"]}}
    sc = demo_scenario(2, faults, KYC_ATTACH_SETTLE_DELAY_S="0.05")
    # each attach is applied, but its party leaves INITIATED only after the run has looked
    load_world(sc.sandbox_url, {**sc.world, "status_moves_after_s": 1.5}, faults)

    first = sc.run(run_id="first")

    sent = [r for r in read_report(first) if r["status"] not in ("rejected",)]
    assert sent and {(r["status"], r["reason_code"]) for r in sent} == {("unknown", "unexpected_answer")}
    assert all("attach: the answer is not JSON (content type text/html)" in r["message"] for r in sent)
    record = sc.record()
    assert record["requests"]["attach"] == 2  # one per customer, never sent again
    assert len(record["attachments"]) == 2 * ATTACHED_PER_CUSTOMER

    httpx.post(f"{sc.sandbox_url}/_sandbox/faults", json={}).raise_for_status()  # the gateway recovered
    time.sleep(1.5)
    second = sc.run(run_id="second")

    record = sc.record()
    assert record["requests"]["attach"] == 2 and record["duplicates"]["attachments"] == 0  # nothing sent twice
    settled = [r for r in read_report(second) if r["row_number"] in {s["row_number"] for s in sent}]
    assert {(r["status"], r["reason_code"]) for r in settled} == {("attached", None)}
    assert all(r["message"].startswith("attached by run first") for r in settled)


def test_a_token_lifetime_of_infinity_mid_run_fails_rows_and_the_run_ends_with_its_report(
        demo_scenario: Callable[..., DemoScenario]) -> None:
    # a customer look-up takes 1 s: the swap below lands before the uploads that follow it are sent
    sc = demo_scenario(3, {"latency": {"ms": 1000, "endpoints": ["customer"]}})
    swapped = threading.Event()

    def swap_at_the_first_customer_look_up() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not sc.record()["requests"].get("customer"):
            time.sleep(0.01)
        # the tokens issued so far die, and the next ones say they live for ever
        httpx.post(f"{sc.sandbox_url}/_sandbox/faults", json={
            "token_ttl_literal": "Infinity", "token_expiry_seconds": 0}).raise_for_status()
        swapped.set()

    swapper = threading.Thread(target=swap_at_the_first_customer_look_up, daemon=True)
    swapper.start()
    summary = sc.run(run_id="infinity")
    swapper.join(5)

    assert swapped.is_set()
    report = read_report(summary)
    assert len(report) == len(sc.rows)  # every row ends in the report with one status
    failed = [r for r in report if r["status"] == "failed"]
    assert failed, Counter((r["status"], r["reason_code"]) for r in report)
    assert {(r["reason_code"], r["message"]) for r in failed} == {
        ("api_error", "token: the answer holds Infinity, which is no finite number (HTTP 200)")}
