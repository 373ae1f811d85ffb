"""Scale-out: the parent flow run fans its shards out as runs of a shard deployment on a work pool.

The parent plans as usual, copies each shard's rows to the run's S3 work area
(``KYC_ATTACH_WORK_URI``), and starts one run of ``KYC_ATTACH_SHARD_DEPLOYMENT`` per shard (``run_deployment``,
bounded, as subflows so they show under the parent). A shard run, on any worker of the pool, downloads its
files, works them with ``flows.shard_worker.run_shard`` and its own Fin client, and writes its report part
and counts back to the work area. The parent removes the shards' rows, downloads the parts and assembles
the report exactly as a single-process run does. The API rate limit is one Prefect global concurrency limit
shared by every shard run (``connectors.prefect_limiter``), created by the parent if missing.

Shard run parameters are names and locations only (``ShardJob``): no data, no settings, no secrets; those
come from the worker's environment.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ConfigDict, field_validator

from connectors.errors import SetupError
from connectors.guarded_delete import remove_tree
from connectors.objects import ObjectStore
from connectors.prefect_limiter import ensure_rate_limit
from connectors.s3 import Location, S3Store
from connectors.s3_workarea import S3WorkArea, download_files, upload_files
from connectors.workarea import BucketRange, write_bucket_range
from flows.attach_flow import rules_from
from flows.plan import PlanResult
from flows.progress import RunProgress, shard_log_line
from flows.report_writer import failed_rows_of
from flows.runtime import fin_client, make_s3_store
from flows.settings import Settings
from flows.shard_worker import ShardServices, run_shard
from transforms.run_ids import run_id_problem
from transforms.run_timeline import Timeline
from transforms.thresholds import FailureBudget


class ShardJob(BaseModel):
    """One shard run's parameters: references only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    shard: str
    rows_uri: str  # s3:// uri of the shard's rows file in the work area
    work_prefix: str  # s3:// prefix of the run's work area
    part_uri: str  # where the shard's report part goes
    ledger_root: str  # the job's ledger (under the report location)
    run_date: date  # the parent's run date: every shard validates against the same day
    dry_run: bool = False
    resend_unknown: bool = False
    allow_reattach: bool = False
    retry_failed_report: str | None = None  # --retry-failed: the earlier run's report prefix
    include_rejected: tuple[str, ...] = ()  # --include-rejected: rejected rows of that run worked again too
    rate_limit: str | None = None  # the Prefect global concurrency limit shared as the API rate limit

    @field_validator("run_id", "shard")
    @classmethod
    def _one_path_segment(cls, value: str) -> str:
        """Both name a local scratch folder that is deleted: a deployment parameter must not point elsewhere."""
        problem = run_id_problem(value)
        if problem is not None:
            raise ValueError(f"the value {problem}")
        return value


async def check_fan_out(settings: Settings, report_root: Location) -> None:
    """Fail before planning when a fanned-out run could not work: shard runs elsewhere need S3 for everything,
    and the shard deployment must exist on the Prefect server this run talks to."""
    if not settings.work_uri or not settings.work_uri.startswith("s3://"):
        raise SetupError("fan-out (KYC_ATTACH_SHARD_DEPLOYMENT) needs KYC_ATTACH_WORK_URI=s3://bucket/prefix")
    if not report_root.is_s3:
        raise SetupError("fan-out needs an s3:// report location: shard runs on other machines write its ledger")
    async with get_client() as client:
        try:
            await client.read_deployment_by_name(str(settings.shard_deployment))
        except ObjectNotFound:
            raise SetupError(f"fan-out: no deployment {settings.shard_deployment!r} on the Prefect server "
                             "(PREFECT_API_URL); apply deployments/prefect.yaml there") from None


# ---------------------------------------------------------------------------------------------- shard run


@flow(name="attach-shard")
async def shard_flow(job: ShardJob) -> dict[str, Any]:
    """Work one shard of a fanned-out run: download its rows, work them, upload its report part."""
    started = time.monotonic()
    settings = Settings()
    s3 = make_s3_store(settings)
    store = ObjectStore(s3)
    work = S3WorkArea(store, Location.parse(job.work_prefix))
    shards_dir = settings.work_dir / "shards"
    local = shards_dir / job.run_id / job.shard
    try:
        counts, api, stopped_early, timeline = await _work_shard(job, settings, s3, store, work, local)
    finally:
        # The scratch folder holds the shard's rows (personal data) and its report part, both on S3 (or made again
        # by a retried run): nothing of it stays on the worker, whether the run ended well or not.
        await asyncio.to_thread(remove_tree, local, root=shards_dir)
    seconds = time.monotonic() - started
    result = {
        "shard": job.shard, "counts": counts, "api": api, "seconds": round(seconds, 3),
        "timeline": timeline.as_dict(),
        "stopped_early": stopped_early,
        # where it ran: the worker's host and the process that started this run (the worker, for a process pool)
        "host": socket.gethostname(), "pid": os.getpid(), "ppid": os.getppid(),
    }
    store.write(work.result(job.shard), json.dumps(result).encode(), content_type="application/json", overwrite=True)
    get_run_logger().info(shard_log_line(job.shard, counts, seconds))
    return result


async def _work_shard(job: ShardJob, settings: Settings, s3: S3Store, store: ObjectStore, work: S3WorkArea,
                      local: Path) -> tuple[dict[str, int], dict[str, Any], str | None, Timeline]:
    """Download, work and upload one shard in ``local``; its counts, API statistics, early stop and timeline."""
    pairs = [(Location.parse(job.rows_uri), local / "rows.arrow")]
    (rows_file,) = await asyncio.to_thread(download_files, store, pairs)
    only_rows = (await asyncio.to_thread(failed_rows_of, store, Location.parse(job.retry_failed_report),
                                         job.include_rejected)
                 if job.retry_failed_report else None)
    services = ShardServices(
        s3=s3, store=store, fin=None, rules=rules_from(settings, job.run_date),
        ledger_root=Location.parse(job.ledger_root),
        max_file_bytes=settings.max_file_bytes,
        max_concurrent_customers=settings.max_concurrent_customers,
        max_concurrent_uploads=settings.max_concurrent_requests,
        budget=FailureBudget(max_ratio=settings.fail_ratio, min_attempts=settings.fail_min_attempts),
        settle_delay_s=settings.settle_delay_s,
        resend_unknown=job.resend_unknown,
        allow_reattach=job.allow_reattach,
        trust_initiated_as_not_applied=settings.trust_initiated_as_not_applied,
        run_id=job.run_id,
        payloads_dir=local / "payloads" if job.dry_run else None,
        only_rows=only_rows,
    )
    out = local / "part.parquet"
    api: dict[str, Any] = {}
    if job.dry_run:
        counts = await run_shard(job.shard, BucketRange(str(rows_file)), services, out)
    else:
        async with fin_client(settings, shared_limit=job.rate_limit) as fin:
            fin.stats.per_second = services.timeline
            await fin.authenticate()
            services.fin = fin
            counts = await run_shard(job.shard, BucketRange(str(rows_file)), services, out)
            api = fin.stats.as_dict()
    uploads = [(out, Location.parse(job.part_uri))]
    payloads = local / "payloads" / f"{job.shard}.jsonl"
    if payloads.exists():
        uploads.append((payloads, work.payloads(job.shard)))
    await asyncio.to_thread(upload_files, store, uploads)
    return counts, api, services.budget.reason() if services.budget.tripped else None, services.timeline


# ---------------------------------------------------------------------------------------------- parent side


@dataclass
class FanOutResult:
    """What the shard runs reported, merged: API statistics, an early stop, and where they ran."""

    api: dict[str, Any] = field(default_factory=dict)
    stopped_early: str | None = None
    shard_results: list[dict[str, Any]] = field(default_factory=list)


@task(name="upload-shard-rows", cache_policy=NO_CACHE)
async def upload_shard_rows_task(plan: PlanResult, run_dir: Path, work_prefix: str) -> dict[str, str]:
    """Copy every shard's rows, as a file of their own, to the run's work area; the s3:// uri by shard."""
    settings = Settings()
    work = S3WorkArea(ObjectStore(make_s3_store(settings)), Location.parse(work_prefix))

    def all_shards() -> dict[str, str]:
        files = {s.name: Path(write_bucket_range(s.rows, run_dir / "shard-rows" / f"{s.name}.arrow",
                                                 compression=settings.work_compression).rows_file)
                 for s in plan.shards}
        return work.upload_shard_rows(files)

    return await asyncio.to_thread(all_shards)


async def fan_out_shards(plan: PlanResult, *, settings: Settings, run_id: str, run_dir: Path,
                         ledger_root: Location, run_date: date, dry_run: bool, resend_unknown: bool,
                         allow_reattach: bool, retry_failed_report: Location | None,
                         include_rejected: tuple[str, ...], progress: RunProgress) -> FanOutResult:
    """Run every shard as a run of the shard deployment and bring the report parts home into ``run_dir/parts``."""
    deployment = settings.shard_deployment
    assert deployment is not None
    logger = get_run_logger()
    store = ObjectStore(make_s3_store(settings))
    work = S3WorkArea.for_run(store, settings.work_uri, run_id)
    limit = None if dry_run else settings.rate_limit_name
    if limit is not None:
        await ensure_rate_limit(limit, settings.rate_limit_rps)
    uris = await upload_shard_rows_task(plan, run_dir, str(work.prefix))
    jobs = [ShardJob(
        run_id=run_id, shard=s.name, rows_uri=uris[s.name], work_prefix=str(work.prefix),
        part_uri=str(work.part(s.name)), ledger_root=str(ledger_root), run_date=run_date, dry_run=dry_run,
        resend_unknown=resend_unknown, allow_reattach=allow_reattach, rate_limit=limit,
        retry_failed_report=str(retry_failed_report) if retry_failed_report else None,
        include_rejected=include_rejected,
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
    ordered = [results[j.shard] for j in jobs]
    stops = [r["stopped_early"] for r in ordered if r.get("stopped_early")]
    return FanOutResult(api=merge_api_stats([r["api"] for r in ordered]), stopped_early=stops[0] if stops else None,
                        shard_results=ordered)


async def _remove_shard_rows(work: S3WorkArea, logger: Any) -> None:
    """Delete the shards' rows files; a refusal (no s3:DeleteObject) is logged, never fails a finished run."""
    try:
        await asyncio.to_thread(work.remove_shard_rows)
    except Exception as exc:  # the shards' work is done whatever happens here
        logger.warning("could not delete the shards' rows files under %s (%s): delete them, or give the run "
                       "s3:DeleteObject there or a lifecycle rule", work.prefix.child("rows"), type(exc).__name__)


def shard_run_key(job: ShardJob) -> str:
    """The idempotency key of a shard's run: a parent retried with the same parameters finds the shard runs it
    started instead of starting them again. The key covers every parameter, not only the run id and shard:
    run ids are unique per report location only, and a run handed another job's shard run (another report
    location, work area, manifest or mode, such as a dry run) would assemble that run's report as its own."""
    digest = hashlib.sha256(job.model_dump_json().encode()).hexdigest()[:16]
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
