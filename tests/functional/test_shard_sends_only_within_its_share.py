"""A fanned-out shard run sends to the API only while it holds its share of the rate (counted by the other shard runs),
and holds none when it has nothing to send (sandbox Fin API over HTTP)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import flows.runtime as runtime
from connectors.manifest import open_manifest
from connectors.objects import ObjectStore
from connectors.rate_share import RateShare, rate_tag
from connectors.s3 import Location
from flows.commands.demo import demo_world
from flows.plan import plan_manifest
from flows.runtime import run_mode, shard_services
from flows.settings import Settings
from flows.shard_services import DryRunMode, ShardServices
from flows.shard_worker import run_shard
from tests.support.scenario import api_env, load_world, sandbox_record
from transforms.codes import Reason
from transforms.rules import Rules
from transforms.run_timeline import Timeline

TODAY = dt.date(2026, 1, 10)
SHARE = RateShare(tag=rate_tag("fin"), total_rps=100.0, expected_runs=4)


def _recording_share(sandbox_url: str, entered: list[int]) -> Callable[..., Any]:
    """A share that notes how many requests the sandbox had received when the run entered it."""
    @asynccontextmanager
    async def share(*_args: Any, **_kwargs: Any) -> AsyncIterator[None]:
        entered.append(sum(sandbox_record(sandbox_url)["requests"].values()))
        yield

    return share


def test_a_shard_run_asks_for_its_token_only_once_it_holds_its_share(
        fin_sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The token request is a request like any other: sent before the run is counted, it comes on top of the R the
    runs counted share."""
    world = demo_world(customers=1)
    load_world(fin_sandbox.url, world)
    api_env(monkeypatch, fin_sandbox.url, tmp_path)
    entered: list[int] = []
    monkeypatch.setattr(runtime, "share_of_rate", _recording_share(fin_sandbox.url, entered))
    settings = Settings()

    async def shard_run() -> None:
        async with run_mode(settings, dry_run=False, payloads_dir=tmp_path / "p", timeline=Timeline(),
                            rate_share=SHARE) as mode:
            services = shard_services(settings, mode, store=ObjectStore(None), run_date=TODAY,
                                      ledger_root=Location.parse(str(tmp_path / "ledger" / "job")), run_id="r1",
                                      resend_unknown=False, allow_reattach=False, only_rows=None,
                                      timeline=Timeline(), rate_share=SHARE)
            async with services.sending():
                assert mode.fin is not None
                await mode.fin.get_customer(world["customers"][0]["customer_id"])

    asyncio.run(shard_run())
    assert entered == [0]  # nothing sent before the share was held
    assert sandbox_record(fin_sandbox.url)["requests"].get("token", 0) >= 1


C1 = "0f8e3c52-6d1a-4b7e-9a21-3c5d7e9f1a01"
P1 = "5b2d7c1e-8f3a-4d6b-a1c9-2e4f6a8b0c11"


def _shares_held(tmp_path: Path, customer_id: str, *, stopped: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """One passport row of ``customer_id`` planned and worked as a shard (a dry run, no API): the shares the shard
    took and its report rows. ``stopped``: the run stopped (a lost lease) before the shard began."""
    manifest_path = tmp_path / "m.csv"
    manifest_path.write_text(
        "document_type,s3_uri,customer_id,associated_party_id,document_number,country,issue_date,expiry_date\n"
        f"PASSPORT,s3://kyc-docs/p.pdf,{customer_id},{P1},PXN0000105,USA,2021-03-10,2035-03-10\n")
    plan = plan_manifest(open_manifest(str(manifest_path), store=None, cache_dir=tmp_path / "cache"),
                         rules=Rules(today=TODAY), run_dir=tmp_path / "run", batch_rows=100, slots=4,
                         shard_rows=1000)
    held: list[str] = []

    @asynccontextmanager
    async def sending() -> AsyncIterator[None]:
        held.append("share")
        yield

    services = ShardServices(store=ObjectStore(None), mode=DryRunMode(tmp_path / "payloads"), rules=Rules(today=TODAY),
                             ledger_root=Location.parse(str(tmp_path / "ledger" / "job")), max_file_bytes=1 << 20,
                             max_concurrent_customers=2, max_concurrent_uploads=2, sending=sending)
    if stopped:
        services.budget.halt("another run took the lease", Reason.lease_lost)
    report: list[dict[str, Any]] = []
    for shard in plan.shards:
        out = tmp_path / "parts" / f"{shard.name}.parquet"
        asyncio.run(run_shard(shard.name, shard.rows, services, out))
        report += pq.read_table(out).to_pylist()
    assert plan.shards
    return held, report


def test_a_shard_with_nothing_to_send_is_never_counted_as_sending(tmp_path: Path) -> None:
    """Every row rejected by the plan (or none to retry): the run would lower the others' share for the start-up
    wait and send nothing."""
    held, _ = _shares_held(tmp_path, "not-a-customer-id")
    assert held == []


def test_a_shard_stopped_before_it_began_is_never_counted_as_sending(tmp_path: Path) -> None:
    """The run's lease lost (or its failure budget spent) before the shard began: its rows fail untried, and it
    takes no share of the rate it would not use."""
    held, report = _shares_held(tmp_path, C1, stopped=True)
    assert held == []
    assert [(r["status"], r["reason_code"]) for r in report] == [("failed", "lease_lost")]
