"""One shard of a fanned-out run, as a flow of its own (the ``attach-shard`` deployment's entrypoint).

A shard run, on any worker of the pool, downloads its rows from the run's S3 work area, works them with
``flows.shard_worker.run_shard`` and its own Fin client (spending the shared rate limit's slots), and writes its
report part and counts back to the work area for the parent (``flows.fanout``) to assemble. Kept apart from the
parent flow so that loading this deployment imports none of it.

Shard run parameters are names and locations only (``ShardJob``): no data, no settings, no secrets; those
come from the worker's environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from connectors.guarded_delete import remove_tree
from connectors.objects import ObjectStore
from connectors.rate_share import RateShare
from connectors.report_store import failed_rows_of
from connectors.run_lease import LeaseTerms, RunLease, partitions_in
from connectors.s3 import Location
from connectors.s3_workarea import S3WorkArea, download_files, upload_files
from connectors.work_folder import own_folder
from connectors.workarea import SlotRange
from flows.lease_keeper import LeaseWatch, keep_lease
from flows.progress import shard_log_line
from flows.runtime import run_mode, shard_services
from flows.safe_messages import keep_messages_safe
from flows.settings import Settings
from flows.shard_worker import run_shard
from flows.stores import make_store
from transforms.run_ids import run_id_problem
from transforms.run_timeline import Timeline


class ShardJob(BaseModel):
    """One shard run's parameters: references only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    shard: str
    rows_uri: str  # s3:// uri of the shard's rows file in the work area
    work_prefix: str  # s3:// prefix of the run's work area
    part_uri: str  # where the shard's report part goes
    ledger_root: str  # the job's ledger (under the tenant ledger)
    run_date: date  # the parent's run date: every shard validates against the same day
    dry_run: bool = False
    resend_unknown: bool = False
    allow_reattach: bool = False
    retry_failed_report: str | None = None  # --retry-failed: the earlier run's report prefix
    include_rejected: tuple[str, ...] = ()  # --include-rejected: rejected rows of that run worked again too
    rate_share: RateShare | None = None  # the API rate this run shares with the other shard runs
    lease: LeaseTerms | None = None  # the parent run's lease, joined and renewed while this run works (None: dry run)

    @model_validator(mode="after")
    def _live_runs_share_the_rate(self) -> ShardJob:
        """A live shard run without a share would work at the whole rate, counted by none of the others."""
        if not self.dry_run and self.rate_share is None:
            raise ValueError("rate_share: a live shard run needs the rate it shares (started by a parent flow run)")
        return self

    @field_validator("run_id", "shard")
    @classmethod
    def _one_path_segment(cls, value: str) -> str:
        """Both name a local scratch folder that is deleted: a deployment parameter must not point elsewhere."""
        problem = run_id_problem(value)
        if problem is not None:
            raise ValueError(f"the value {problem}")
        return value


@flow(name="attach-shard")
@keep_messages_safe
async def shard_flow(job: ShardJob) -> dict[str, Any]:
    """Work one shard of a fanned-out run: download its rows, work them, upload its report part."""
    started = time.monotonic()
    settings = Settings()
    store = make_store(settings)
    work = S3WorkArea(store, Location.parse(job.work_prefix))
    local = own_folder(settings.work_dir, "shards", job.run_id, job.shard, fresh=True)  # no link written through
    shards_dir = local.parent.parent
    try:
        counts, api, (stopped_early, stop_code, store_refused), timeline = await _work_shard(
            job, settings, store, work, local)
    finally:
        # The scratch folder holds the shard's rows (personal data) and its report part, both on S3 (or made again
        # by a retried run): nothing of it stays on the worker, whether the run ended well or not.
        await asyncio.to_thread(remove_tree, local, root=shards_dir)
    seconds = time.monotonic() - started
    result = {
        "shard": job.shard, "counts": counts, "api": api, "seconds": round(seconds, 3),
        "timeline": timeline.as_dict(),
        "stopped_early": stopped_early,
        "stop_code": stop_code,  # the reason code of the rows the stop left untried
        "store_refused": store_refused,  # the ledger's store refused a write: the parent skips compaction
        # where it ran: the worker's host and the process that started this run (the worker, for a process pool)
        "host": socket.gethostname(), "pid": os.getpid(), "ppid": os.getppid(),
    }
    store.write(work.result(job.shard), json.dumps(result).encode(), content_type="application/json", overwrite=True)
    get_run_logger().info(shard_log_line(job.shard, counts, seconds))
    return result


async def _work_shard(job: ShardJob, settings: Settings, store: ObjectStore, work: S3WorkArea,
                      local: Path) -> tuple[dict[str, int], dict[str, Any], tuple[str | None, str | None, bool],
                                            Timeline]:
    """Download, work and upload one shard in ``local``; its counts, API statistics, early stop (the stop line, its
    reason code, and whether the ledger's store refused a write) and timeline."""
    pairs = [(Location.parse(job.rows_uri), local / "rows.arrow")]
    (rows_file,) = await asyncio.to_thread(download_files, store, pairs)
    only_rows = (await asyncio.to_thread(failed_rows_of, store, Location.parse(job.retry_failed_report),
                                         job.include_rejected)
                 if job.retry_failed_report else None)
    out = local / "part.parquet"
    timeline = Timeline()
    lease = RunLease(store, job.lease, member=f"shard-{job.shard}") if job.lease is not None else None
    if lease is not None:  # a run whose lease was taken meanwhile (its parent killed long ago) sends nothing
        partitions = await asyncio.to_thread(partitions_in, [SlotRange(str(rows_file))])
        await asyncio.to_thread(lease.join, partitions)
    watch = LeaseWatch()
    heartbeat = asyncio.create_task(keep_lease(lease, watch)) if lease is not None else None
    try:
        async with run_mode(settings, dry_run=job.dry_run, payloads_dir=local / "payloads", timeline=timeline,
                            rate_share=job.rate_share) as mode:
            services = shard_services(
                settings, mode, store=store, run_date=job.run_date, ledger_root=Location.parse(job.ledger_root),
                run_id=job.run_id, resend_unknown=job.resend_unknown, allow_reattach=job.allow_reattach,
                only_rows=only_rows, timeline=timeline, rate_share=job.rate_share,
            )
            watch.guard(services.budget)
            counts = await run_shard(job.shard, SlotRange(str(rows_file)), services, out)
            api = mode.api_stats()
    finally:
        if heartbeat is not None and lease is not None:
            heartbeat.cancel()
            await asyncio.to_thread(lease.release)
    uploads = [(out, Location.parse(job.part_uri))]
    payloads = local / "payloads" / f"{job.shard}.jsonl"
    if payloads.exists():
        uploads.append((payloads, work.payloads(job.shard)))
    await asyncio.to_thread(upload_files, store, uploads)
    budget = services.budget
    stop = (budget.reason(), budget.stop_code.value) if budget.tripped else (None, None)
    return counts, api, (*stop, budget.store_refused), timeline


