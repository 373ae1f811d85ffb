"""Token upkeep under load (connectors/fin.py), through whole runs against the sandbox: short-lived, revoked,
replaced and garbled tokens."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from flows.commands.demo import CLIENT_ID, CLIENT_SECRET
from tests.support.scenario import EXPECTED_REJECTS, DemoScenario, read_report

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def _valid(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in report if r["s3_uri"].rsplit("/", 1)[-1] not in EXPECTED_REJECTS]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("token_faults", [
    {"errors": {"share": 0.4, "endpoints": ["token"]}},
    {"rate_limit": {"rps": 2, "burst": 1, "retry_after": False, "endpoints": ["token"]}},
    {"random_429": {"share": 0.5, "endpoints": ["token"]}},
], ids=["token-5xx", "token-429-no-retry-after", "token-random-429"])
def test_short_lived_tokens_with_a_flaky_token_endpoint_every_valid_row_attached_once(
    demo_scenario: Callable[..., DemoScenario], token_faults: dict[str, Any],
) -> None:
    """Tokens end after 0.3 s (their ttl says a day) while the token endpoint fails or throttles; uploads are
    slowed so requests queue for tokens. Every valid row must end attached, nothing twice, and the run ends."""
    faults = {"seed": 3, "token_expiry_seconds": 0.3,
              "latency": {"distribution": "uniform", "ms": 50, "max_ms": 250, "endpoints": ["upload", "attach"]},
              **token_faults}
    scenario = demo_scenario(customers=8, faults=faults)

    summary = scenario.run()

    report = read_report(summary)
    valid = _valid(report)
    assert {r["status"] for r in valid} == {"attached"}, Counter((r["status"], r["reason_code"], r["message"])
                                                               for r in valid if r["status"] != "attached")
    record = scenario.record()
    assert record["duplicates"] == {"uploads": 0, "attachments": 0}


def _once_attached(sandbox: Any, stop: threading.Event, act: Callable[[Any], None]) -> None:
    """Wait until the first attach landed, then do ``act`` to the sandbox's app (unless the run ended first)."""
    while not stop.is_set():
        if sandbox.app.record.attachments:
            act(sandbox.app)
            return
        time.sleep(0.005)


def _run_while_watched(scenario: DemoScenario, sandbox: Any,
                       watch: Callable[[Any, threading.Event], None]) -> dict[str, Any]:
    """Run the scenario while ``watch`` (a ``_..._when_attached``) waits in a thread to break the sandbox."""
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(sandbox, stop), daemon=True)
    watcher.start()
    try:
        summary: dict[str, Any] = scenario.run()
    finally:
        stop.set()
        watcher.join()
    return summary


def _failed_not_unknown(summary: dict[str, Any]) -> None:
    """Some rows attached, the rest failed (nothing of them was applied), none left unknown."""
    report = _valid(read_report(summary))
    statuses = Counter((r["status"], r["reason_code"]) for r in report)
    assert statuses[("attached", None)] > 0 and statuses[("failed", "api_error")] > 0, statuses
    assert not [r for r in report if r["status"] == "unknown"], statuses


def _revoke_when_attached(sandbox: Any, stop: threading.Event) -> None:
    """Once the first attach landed, revoke the client: its secret rotated, every access and refresh token
    forgotten (as when Fin's admins revoke a leaked client)."""
    def revoke(app: Any) -> None:
        app.secrets[CLIENT_ID] = "rotated-secret"
        app.tokens._access.clear()
        app.tokens._refresh.clear()
    _once_attached(sandbox, stop, revoke)


def test_credentials_revoked_mid_run_rows_not_sent_end_failed_and_a_rerun_sends_them(
    demo_scenario: Callable[..., DemoScenario], fin_sandbox: Any,
) -> None:
    """The client is revoked while a run works. Found: the token renewal raises SetupError ('cannot start')
    mid-run; attach_once does not catch it, so documents marked in_flight in the ledger stay in_flight and the
    rows end `unknown`/`outcome_unknown` (row_failures.fail_from's fallback) although nothing of them was sent.
    A re-run with the secret restored then reports them `unknown` again instead of attaching them.
    Expected: such rows end `failed` (nothing was applied) and a re-run attaches them. Fixed: a refusal of the
    credentials after the first token is a TerminalError (failed, api_error), SetupError only before the run."""
    faults = {"latency": {"distribution": "fixed", "ms": 150, "endpoints": ["attach"]}}
    scenario = demo_scenario(customers=6, faults=faults, KYC_ATTACH_MAX_CONCURRENT_CUSTOMERS="2")
    _failed_not_unknown(_run_while_watched(scenario, fin_sandbox, _revoke_when_attached))

    fin_sandbox.app.secrets[CLIENT_ID] = CLIENT_SECRET  # restored
    again = _valid(read_report(scenario.run()))
    assert {r["status"] for r in again} <= {"attached", "skipped"}, Counter((r["status"], r["reason_code"])
                                                                          for r in again)


@pytest.mark.timeout(240)
def test_an_api_that_ends_the_previous_token_on_renewal_does_not_spiral(
    demo_scenario: Callable[..., DemoScenario],
) -> None:
    """Tokens live 1 s, and a new token ends the client's earlier ones (sandbox fault revoke_previous_tokens, as
    gateways keeping one live token per client do). A renewal then refuses requests still carrying the old token,
    and each such 401 teaches the client a shorter token life (0.8 x that token's age, though it was only
    replaced): the worry was a spiral of ever faster renewals. Held: the token is taken just before the send, so
    few requests meet a replaced token (1-3 401s a run); everything attached, a handful of token requests."""
    faults = {"token_expiry_seconds": 1.0, "revoke_previous_tokens": True,
              "latency": {"distribution": "uniform", "ms": 100, "max_ms": 400, "endpoints": ["upload", "attach"]}}
    scenario = demo_scenario(customers=60, faults=faults, KYC_ATTACH_RATE_LIMIT_RPS="200")

    summary = scenario.run()

    valid = _valid(read_report(summary))
    assert {r["status"] for r in valid} == {"attached"}, Counter((r["status"], r["reason_code"])
                                                               for r in valid if r["status"] != "attached")
    assert scenario.record()["duplicates"] == {"uploads": 0, "attachments": 0}
    seconds = max(summary["seconds"], 1.0)
    assert summary["api"]["requests"].get("token", 0) <= 2 * seconds + 5, (summary["api"]["requests"], seconds)


def _garble_tokens_when_attached(sandbox: Any, stop: threading.Event) -> None:
    """Once the first attach landed, every live token ends and the token endpoints answer 200 with a body that
    holds no token (a gateway's maintenance page passed through as JSON)."""
    def garble(app: Any) -> None:
        app._token_body = lambda issued: {"message": "maintenance"}
        app.tokens._access.clear()
    _once_attached(sandbox, stop, garble)


def test_a_token_answer_without_a_token_mid_run_fails_rows_not_the_run(
    demo_scenario: Callable[..., DemoScenario], fin_sandbox: Any,
) -> None:
    """Found: `_parse_token` let the KeyError of a 200 answer holding no `access_token` escape; it is no
    KycAttachError, so the customer's worker did not catch it and the whole run crashed (no report), leaving the
    documents it had marked in_flight for a later run to report `unknown`. Expected: the rows fail (nothing was
    sent) and the run writes its report; a re-run attaches them. Fixed: a token answer without a usable token is
    a TerminalError (api_error)."""
    faults = {"latency": {"distribution": "fixed", "ms": 150, "endpoints": ["attach"]}}
    scenario = demo_scenario(customers=6, faults=faults, KYC_ATTACH_MAX_CONCURRENT_CUSTOMERS="2")
    real_body = fin_sandbox.app._token_body
    try:
        summary = _run_while_watched(scenario, fin_sandbox, _garble_tokens_when_attached)
    finally:
        fin_sandbox.app._token_body = real_body
    _failed_not_unknown(summary)

    again = _valid(read_report(scenario.run()))
    assert {r["status"] for r in again} <= {"attached", "skipped"}, Counter((r["status"], r["reason_code"])
                                                                          for r in again)


def test_a_customer_answer_that_is_not_json_fails_that_customer_not_the_run(
    demo_scenario: Callable[..., DemoScenario], fin_sandbox: Any,
) -> None:
    """One customer's GET is answered 200 with an HTML page (a gateway's maintenance page). Found: the
    JSONDecodeError of `resp.json()` in `get_customer` is no KycAttachError: `_work_customer` (whose docstring
    says an unexpected error fails its rows, never the shard) let it through and the whole run crashed, no
    report. Expected: that customer's rows `failed`, the others attached. Fixed: a 2xx answer whose body is not
    the JSON object expected is a TerminalError (api_error) in connectors/fin.py."""
    scenario = demo_scenario(customers=3)
    app = fin_sandbox.app
    broken = scenario.world["customers"][1]["customer_id"]
    real = app._customer

    async def customer(scope: Any, receive: Any, send: Any, fate: Any) -> None:
        if scope["path"].split("/")[3] != broken:
            return await real(scope, receive, send, fate)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<html>down for maintenance</html>"})
        return None

    app._customer = customer
    try:
        summary = scenario.run()
    finally:
        app._customer = real
    report = _valid(read_report(summary))
    of_broken = Counter((r["status"], r["reason_code"]) for r in report if r["customer_id"] == broken)
    others = Counter((r["status"], r["reason_code"]) for r in report if r["customer_id"] != broken)
    assert set(of_broken) == {("failed", "api_error")}, of_broken
    assert set(others) == {("attached", None)}, others
