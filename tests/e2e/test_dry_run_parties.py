"""A dry run looks parties known by email up as the real run does (one read of the customer), and sends nothing.

Whole flow runs against the Fin sandbox and the loopback S3 server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.attach_flow import run_attach
from flows.commands.demo import demo_rows, demo_world
from tests.support.scenario import api_env, load_world, put_scenario, read_report, sandbox_record

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

UNKNOWN = "nobody.here@example.com"


@pytest.fixture()
def unknown_party(fin_sandbox: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> tuple[Callable[..., dict[str, Any]], list[dict[str, str]]]:
    """A demo scenario whose second customer's ID card names a party by an email the customer does not have;
    a function running the flow over it, and the manifest's rows."""
    world = demo_world(customers=2)
    rows, files = demo_rows(world, bucket)
    second = world["customers"][1]["associated_parties"][1]["email"]
    for row in rows:
        if row.get("associated_party_email") == second:
            row["associated_party_email"] = UNKNOWN
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    manifest = put_scenario(bucket, rows, files)

    def run(run_id: str, **kwargs: Any) -> dict[str, Any]:
        summary: dict[str, Any] = asyncio.run(run_attach(manifest, f"s3://{bucket}/reports", run_id=run_id,
                                                         **kwargs))
        return summary

    return run, rows


def _party_rejects(report: list[dict[str, Any]]) -> dict[int, str]:
    return {r["row_number"]: r["reason_code"] for r in report
            if r["status"] == "rejected" and r["reason_code"].startswith(("party_", "ambiguous_party"))}


def test_the_dry_run_reports_a_party_unknown_by_email_as_the_run_does_and_sends_nothing(
        unknown_party: tuple[Callable[..., dict[str, Any]], list[dict[str, str]]], fin_sandbox: Any) -> None:
    run, _ = unknown_party
    dry = read_report(run("dry", dry_run=True))

    record = sandbox_record(fin_sandbox.url)
    assert record["uploads"] == [] and record["attachments"] == []
    assert set(record["requests"]) <= {"token", "customer"}
    assert record["requests"].get("customer", 0) >= 1
    assert sorted(_party_rejects(dry).values()) == ["party_not_found", "party_not_found"]  # front and back
    resolved = [r for r in dry if r["status"] == "skipped" and r["reason_code"] == "dry_run"]
    assert resolved and all(r["associated_party_id"] for r in resolved)  # email parties resolved to their ids

    real = read_report(run("real"))
    assert _party_rejects(real) == _party_rejects(dry)


def test_without_credentials_the_dry_run_leaves_email_parties_unresolved_and_says_so(
        unknown_party: tuple[Callable[..., dict[str, Any]], list[dict[str, str]]], fin_sandbox: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run, rows = unknown_party
    monkeypatch.delenv("FIN_CLIENT_ID")
    monkeypatch.delenv("FIN_CLIENT_SECRET")

    dry = read_report(run("dry", dry_run=True))

    assert sum(sandbox_record(fin_sandbox.url)["requests"].values()) == 0
    assert _party_rejects(dry) == {}
    unresolved = [r for r in dry if r["reason_code"] == "dry_run" and not r["associated_party_id"]]
    assert len(unresolved) == sum(1 for r in rows if r.get("associated_party_email") and not
                                  r.get("associated_party_id"))
    assert all("not looked up: no API credentials configured" in r["message"] for r in unresolved)
