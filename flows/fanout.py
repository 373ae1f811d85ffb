"""Scale-out: the parent flow run fans its shards out as runs of a shard deployment on a work pool.

The parent plans as usual, copies each shard's rows to the run's S3 work area (``KYC_ATTACH_WORK_URI``), and
starts one run of ``KYC_ATTACH_SHARD_DEPLOYMENT`` per shard (``run_deployment``, bounded, as subflows so they
show under the parent). A shard run (``flows.shard_flow``), on any worker of the pool, works its rows with its
own Fin client and writes its report part and counts back to the work area. The parent removes the shards'
rows, downloads the parts and assembles the report exactly as a single-process run does. The API rate limit is
shared by the shard runs working at once, each taking an even share (``connectors.rate_share``): the shard runs
are tagged with the rate's name, and each counts the others on the Prefect server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound

from connectors.errors import SetupError
from connectors.rate_share import RateShare, rate_tag
from connectors.run_lease import LeaseTerms
from connectors.s3 import Location
from connectors.s3_workarea import S3WorkArea, download_files
from connectors.tenant_ledger import ledger_location
from connectors.workarea import write_slot_range
from flows.plan import PlanResult
from flows.progress import RunProgress
from flows.settings import Settings, env_name
from flows.shard_flow import ShardJob
from flows.stores import make_store
from transforms.codes import Reason


async def check_fan_out(settings: Settings, report_root: Location) -> None:
    """Fail before planning when a fanned-out run could not work: shard runs elsewhere need S3 for everything,
    and the shard deployment must exist on the Prefect server this run talks to."""
    if not settings.work_uri or not settings.work_uri.startswith("s3://"):
        raise SetupError("fan-out (KYC_ATTACH_SHARD_DEPLOYMENT) needs KYC_ATTACH_WORK_URI=s3://bucket/prefix")
    if not report_root.is_s3:
        raise SetupError("fan-out needs an s3:// report location: shard runs on other machines read a --retry-failed "
                         "run's report there")
    if not ledger_location(settings.ledger_uri, settings.work_dir).is_s3:
        raise SetupError("fan-out needs an s3:// ledger (KYC_ATTACH_LEDGER_URI): shard runs on other machines write it")
    async with get_client() as client:
        try:
            await client.read_deployment_by_name(str(settings.shard_deployment))
        except ObjectNotFound:
            raise SetupError(f"fan-out: no deployment {settings.shard_deployment!r} on the Prefect server "
                             "(PREFECT_API_URL); apply deployments/prefect.yaml there") from None


@dataclass
class FanOutResult:
    """What the shard runs reported, merged: API statistics, an early stop, and where they ran."""

    api: dict[str, Any] = field(default_factory=dict)
    stopped_early: str | None = None
    shard_results: list[dict[str, Any]] = field(default_factory=list)
    store_refused: bool = False  # a shard run stopped because the ledger's store refused a write

    @classmethod
    def merged(cls, ordered: list[dict[str, Any]]) -> FanOutResult:
        """The shard runs' results (``shard_flow``'s dicts) in shard order, merged."""
        stops = [r["stopped_early"] for r in ordered if r.get("stopped_early")]
        # a shard run of an older release says so by its stop code only (the first cause that halted it)
        refused = any(r.get("store_refused", r.get("stop_code") == Reason.ledger_unavailable.value) for r in ordered)
        return cls(api=merge_api_stats([r["api"] for r in ordered]), stopped_early=stops[0] if stops else None,
                   shard_results=ordered, store_refused=refused)


@task(name="upload-shard-rows", cache_policy=NO_CACHE)
async def upload_shard_rows_task(plan: PlanResult, run_dir: Path, work_prefix: str) -> dict[str, str]:
    """Copy every shard's rows, as a file of their own, to the run's work area; the s3:// uri by shard."""
    settings = Settings()
    work = S3WorkArea(make_store(settings), Location.parse(work_prefix))

    def all_shards() -> dict[str, str]:
        files = {s.name: Path(write_slot_range(s.rows, run_dir / "shard-rows" / f"{s.name}.arrow",
                                                 compression=settings.work_compression).rows_file)
                 for s in plan.shards}
        return work.upload_shard_rows(files)

    return await asyncio.to_thread(all_shards)


async def fan_out_shards(plan: PlanResult, *, settings: Settings, run_id: str, run_dir: Path,
                         ledger_root: Location, run_date: date, dry_run: bool, resend_unknown: bool,
                         allow_reattach: bool, retry_failed_report: Location | None,
                         include_rejected: tuple[str, ...], progress: RunProgress,
                         lease: LeaseTerms | None = None) -> FanOutResult:
    """Run every shard as a run of the shard deployment and bring the report parts home into ``run_dir/parts``.

    ``lease``: the run's lease, which every shard run joins and renews while it works (``None``: a dry run)."""
    deployment = settings.shard_deployment
    assert deployment is not None
    logger = get_run_logger()
    store = make_store(settings)
    work = S3WorkArea.for_run(store, settings.work_uri, run_id)
    # The shard runs allowed at once: while a shard run cannot ask Prefect how many others work, it assumes this.
    at_once = max(1, min(settings.fanout_concurrency, len(plan.shards)))
    # a dry run's shard runs share it too: with credentials they look customers up
    share = RateShare(tag=rate_tag(settings.rate_limit_name), total_rps=settings.rate_limit_rps, expected_runs=at_once)
    uris = await upload_shard_rows_task(plan, run_dir, str(work.prefix))
    jobs = [ShardJob(
        run_id=run_id, shard=s.name, rows_uri=uris[s.name], work_prefix=str(work.prefix),
        part_uri=str(work.part(s.name)), ledger_root=str(ledger_root), run_date=run_date, dry_run=dry_run,
        resend_unknown=resend_unknown, allow_reattach=allow_reattach, rate_share=share,
        retry_failed_report=str(retry_failed_report) if retry_failed_report else None,
        include_rejected=include_rejected, lease=lease,
    ) for s in plan.shards]
    logger.info("fanning %d shards out to %s", len(jobs), settings.shard_deployment)
    gate = asyncio.Semaphore(settings.fanout_concurrency)
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []

    async def one(job: ShardJob) -> None:
        async with gate:
            run = await arun_deployment(
                deployment, parameters={"job": job.model_dump(mode="json")},
                flow_run_name=f"{run_id}-{job.shard}", idempotency_key=shard_run_key(job),
                tags=[share.tag] if share else None, job_variables=secret_block_env(settings),
                as_subflow=True, timeout=None, poll_interval=2,
            )
        if run.state is None or not run.state.is_completed():
            failed.append(f"{job.shard} ({run.state.name if run.state else 'no state'}, flow run {run.id})")
            return
        result = json.loads(await asyncio.to_thread(store.read, work.result(job.shard)))
        results[job.shard] = result
        await progress.advance(sum(result["counts"].values()))

    try:
        await asyncio.gather(*(one(j) for j in jobs))
    finally:
        # Every shard run has ended (or this run is going down): the rows went to them, nothing reads them again.
        await _remove_shard_rows(work, logger)
    if failed:
        raise RuntimeError(f"{len(failed)} shard run(s) did not complete: " + "; ".join(sorted(failed)))
    pairs = [(work.part(j.shard), run_dir / "parts" / f"{j.shard}.parquet") for j in jobs]
    if dry_run:
        pairs += [(work.payloads(j.shard), run_dir / "payloads" / f"{j.shard}.jsonl")
                  for j in jobs if store.exists(work.payloads(j.shard))]
    await asyncio.to_thread(download_files, store, pairs)
    return FanOutResult.merged([results[j.shard] for j in jobs])


async def _remove_shard_rows(work: S3WorkArea,
                             logger: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
    """Delete the shards' rows files; a refusal (no s3:DeleteObject) is logged, never fails a finished run."""
    try:
        await asyncio.to_thread(work.remove_shard_rows)
    except Exception as exc:  # the shards' work is done whatever happens here
        logger.warning("could not delete the shards' rows files under %s (%s): delete them, or give the run "
                       "s3:DeleteObject there or a lifecycle rule", work.prefix.child("rows"), type(exc).__name__)


def secret_block_env(settings: Settings) -> dict[str, Any] | None:
    """Job variables that hand a shard run the names (never the values) of the parent's Secret and AwsCredentials
    blocks: a shard run gets the deployment's and the worker's environment, not the parent's, and the process
    worker merges this ``env`` over them."""
    names = {field: getattr(settings, field) for field in (
        "fin_client_secret_block", "aws_credentials_block_documents", "aws_credentials_block_manifest",
        "aws_credentials_block_report") if getattr(settings, field)}
    if not names:
        return None
    return {"env": {env_name(field): name for field, name in names.items()}}


def shard_run_key(job: ShardJob) -> str:
    """The idempotency key of a shard's run: a parent retried with the same parameters finds the shard runs it
    started instead of starting them again. The key covers every parameter, not only the run id and shard:
    run ids are unique per report location only, and a run handed another job's shard run (another report
    location, work area, manifest or mode, such as a dry run) would assemble that run's report as its own. The
    rate share is left out: it says how fast, not which work, and a parent retried after the rate settings
    changed must still find its shard runs. So are the lease's terms: its id follows from the run id
    and report location, and its stale window is a setting like the rate."""
    digest = hashlib.sha256(job.model_dump_json(exclude={"rate_share", "lease"}).encode()).hexdigest()[:16]
    return f"kyc-attach:{job.run_id}:{job.shard}:{digest}"


def merge_api_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' ``ApiStats.as_dict()`` as one: counts summed, means weighted, slowest the maximum."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    requests: dict[str, int] = {}
    statuses: dict[str, int] = {}
    total_seconds: dict[str, float] = {}
    slowest: dict[str, float] = {}
    for p in parts:
        for k, n in p.get("requests", {}).items():
            requests[k] = requests.get(k, 0) + n
            total_seconds[k] = total_seconds.get(k, 0.0) + p.get("mean_seconds", {}).get(k, 0.0) * n
        for k, n in p.get("statuses", {}).items():
            statuses[k] = statuses.get(k, 0) + n
        for k, s in p.get("slowest_seconds", {}).items():
            slowest[k] = max(slowest.get(k, 0.0), s)
    timeline: dict[int, dict[str, int]] = {}
    for p in parts:  # each process counts from its own start: close enough for a rate over 10 s buckets
        for b in p.get("per_10s", []):
            slot = timeline.setdefault(b["from_s"], {"requests": 0, "429": 0})
            slot["requests"] += b["requests"]
            slot["429"] += b["429"]
    total = sum(requests.values())
    throttled = sum(p.get("throttled_429", 0) for p in parts)
    return {
        "throttled_429": throttled,
        "share_429": round(throttled / total, 4) if total else 0.0,
        # the longest any one process spent with a request waiting out a 429 (they overlap in time)
        "throttled_seconds": max(p.get("throttled_seconds", 0.0) for p in parts),
        "requests": requests,
        "statuses": statuses,
        "mean_seconds": {k: round(v / max(requests[k], 1), 4) for k, v in total_seconds.items()},
        "slowest_seconds": slowest,
        "per_10s": [{"from_s": k, **v} for k, v in sorted(timeline.items())],
    }
