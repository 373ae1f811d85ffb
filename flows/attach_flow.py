"""The Prefect flow: plan the manifest into shards, work the shards, write the report.

Wiring only. One task run per shard (never per row or file: Prefect's per-task cost would dominate a
million-row manifest); tasks pass references (paths, names), never DataFrames; side-effecting tasks
opt out of caching.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import nullcontext
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prefect import State, flow, get_run_logger, task
from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from connectors.errors import KycAttachError, SetupError, StoppedAfterSending
from connectors.guarded_delete import remove_tree
from connectors.jobs import checked_rework, mark_completed
from connectors.ledger import ledger_secret
from connectors.manifest import discard_local_copy, open_manifest
from connectors.mapping_file import load_mapping
from connectors.report_store import (
    assemble_report,
    build_summary,
    check_same_job,
    failed_rows_of,
    publish_report,
    write_report_page,
)
from connectors.run_claim import claim_run, new_claim_token, release_claim
from connectors.run_ids import checked_run_id, new_run_id
from connectors.run_lease import LeaseTerms, RunLease, lease_id_of, partitions_in
from connectors.s3 import Location
from connectors.work_folder import own_folder
from flows.lease_keeper import LeaseWatch, keep_lease
from flows.ledger_gate import open_ledger, stamp_ledger
from flows.ledger_upkeep import compact_after_run
from flows.plan import PlanResult, ShardSpec, plan_manifest
from flows.progress import RunProgress, report_link, report_markdown, shard_log_line
from flows.run_end import end_run, not_started, summary_of
from flows.run_parameters import mask_parameters
from flows.run_rules import rules_from
from flows.runtime import run_mode, shard_services
from flows.safe_messages import keep_messages_safe
from flows.settings import Settings, load_settings
from flows.shard_services import LiveMode, ShardServices
from flows.shard_worker import run_shard
from flows.stopped_report import write_stopped_report
from flows.stores import make_store
from transforms.dry_run_preview import preview
from transforms.report import hashed_s3_uri
from transforms.run_timeline import Timeline

log = logging.getLogger("kyc_attach.flow")


class ShardBroke(Exception):
    """A shard stopped by an error nobody foresaw, named by its type only (its message may quote a row)."""

    def __init__(self, shard: str, error: Exception) -> None:
        self.error_type = type(error).__name__
        super().__init__(f"shard {shard}: unexpected {self.error_type}")


#: How long a cancelled run waits for its stopped report before the cancellation goes on.
STOPPED_REPORT_WAIT_S = 60.0


@task(name="plan", cache_policy=NO_CACHE)
@keep_messages_safe
async def plan_task(manifest: str, run_dir: str, today: date, mapping: str | None = None,
                    mapping_shown: str | None = None) -> PlanResult:
    """Read and validate the manifest in batches (a legacy layout through ``mapping``, named in errors as
    ``mapping_shown`` when given), and split valid rows into shards."""
    settings = Settings()
    needs_s3 = manifest.startswith("s3://") or (mapping or "").startswith("s3://")
    store = make_store(settings, s3=needs_s3)
    found = open_manifest(manifest, store=store.manifests(), cache_dir=Path(run_dir))  # the run's own folder
    try:
        layouts = load_mapping(mapping, store, mapping_shown) if mapping else None
        plan = await asyncio.to_thread(
            plan_manifest, found, rules=rules_from(settings, today), run_dir=Path(run_dir),
            batch_rows=settings.batch_rows, slots=settings.max_shards, shard_rows=settings.shard_rows,
            mapping=layouts, compression=settings.work_compression,
        )
        plan.mapping_digest = layouts.digest() if layouts else None
        return plan
    finally:
        # The rows file holds what the shards need; a copy of an S3 manifest is personal data left lying around.
        discard_local_copy(found, Path(run_dir))


@task(name="shard", cache_policy=NO_CACHE, task_run_name="shard-{spec.name}")
async def shard_task(spec: ShardSpec, services: ShardServices, run_dir: str) -> dict[str, Any]:
    """Work one shard end to end; its report part lands in the run's work area. Returns counts and seconds."""
    started = time.monotonic()
    try:
        counts = await run_shard(spec.name, spec.rows, services, Path(run_dir) / "parts" / f"{spec.name}.parquet")
    except KycAttachError:
        raise  # raised on purpose: its message names fields and reasons, never values
    except Exception as exc:
        # The task run's state and log would carry the message, which may quote a row: only the type goes on.
        raise ShardBroke(spec.name, exc) from None
    seconds = time.monotonic() - started
    get_run_logger().info(shard_log_line(spec.name, counts, seconds))
    return {"counts": counts, "seconds": round(seconds, 3)}


@flow(name="kyc-attach")
@keep_messages_safe
async def attach_manifest(
    manifest: str,
    report_uri: str,
    run_id: str | None = None,
    dry_run: bool = False,
    resend_unknown: bool = False,
    retry_failed: str | None = None,
    mapping: str | None = None,
    claim_token: str | None = None,
    allow_reattach: bool = False,
    include_rejected: list[str] | None = None,
) -> dict[str, Any] | State[Any]:
    """Attach the documents of ``manifest`` to Fin and write the report under ``report_uri/run_id/``.

    ``retry_failed`` names an earlier run of the same manifest: only its ``failed`` rows are worked.
    ``include_rejected`` (with ``retry_failed``) also works the rows that run rejected for these reasons (only
    ``connectors.jobs.REWORKABLE_REJECTS``: ones that can go away without editing the manifest).
    ``allow_reattach`` sends documents again although an earlier run attached them (the rare deliberate case).
    ``mapping`` locates a legacy mapping file (YAML, a path or s3:// uri) for archives in a foreign layout.
    Settings (API URL, credentials, limits) come from the environment, never from parameters, so no
    secret reaches Prefect's database.

    The flow returns the run's summary; a run with ``failed`` or ``unknown`` rows, or stopped by the failure
    threshold, ends in a ``Failed`` state holding it (``flows.run_end``), after its report is written.

    Run ids (``run_id``, ``retry_failed``) are checked here too, as a deployment parameter can carry them. The run
    id is claimed under the report location before anything is sent; ``claim_token`` is the token of a claim the
    CLI made already (a run started any other way claims with its flow run's id, which a retry of it keeps).
    """
    started = time.monotonic()
    try:  # refused before anything is claimed or sent: one line (a malformed setting, a block that cannot be read)
        settings = load_settings()  # a malformed setting: one line naming it, never its value
        if not dry_run:  # a deployment run has no start-up gate: say what is missing before planning
            settings.require_api_credentials()
        run_id = checked_run_id(run_id) if run_id is not None else new_run_id()
        if retry_failed is not None:
            checked_run_id(retry_failed, option="retry_failed")
        report_root = Location.parse(report_uri)
        store = make_store(settings)
    except SetupError as exc:
        return not_started(exc)
    today = datetime.now(UTC).date()
    run_prefix = report_root.child(run_id)
    flow_run_id = flow_run.get_id()
    token = claim_token or (f"flow-run-{flow_run_id}" if flow_run_id else new_claim_token())
    # Everything that can refuse the run comes before the claim (which refuses a published report too), so a
    # refused start leaves its run id usable; a refusal after it (or of a run the CLI claimed) releases it. The
    # lease covers the customers the plan touches, so it is taken once the plan is made and before anything is
    # sent: no other run works these customers while this one does (runs over other customers go on).
    try:
        reworked = checked_rework(include_rejected, retry_failed)
        if settings.shard_deployment:
            from flows.fanout import check_fan_out

            await check_fan_out(settings, report_root)
        ledger, warnings = await asyncio.to_thread(open_ledger, settings, store, report_root, dry_run=dry_run)
        for warning in warnings:
            get_run_logger().warning(warning)
        # hashed report mode: the manifest's and the mapping's locations are shown as their keyed digests, in Prefect
        # as in the report
        mask_secret = (await asyncio.to_thread(ledger_secret, store, ledger.child("_documents"))
                       if settings.report_s3_uri == "hashed" else None)
        shown_manifest = hashed_s3_uri(manifest, mask_secret) if mask_secret else manifest
        shown_mapping = hashed_s3_uri(mapping, mask_secret) if mask_secret and mapping else mapping
        if mask_secret:
            await mask_parameters({"manifest": shown_manifest, **({"mapping": shown_mapping} if shown_mapping else {})})
        if not dry_run:
            await stamp_ledger(settings, store, ledger)
        claim_run(store, run_prefix, run_id=run_id, token=token, started_at=datetime.now(UTC).isoformat())
        # After the claim: the run id is ours, so an earlier run's leftovers under it can go.
        run_dir = await asyncio.to_thread(own_folder, settings.work_dir, "runs", run_id, fresh=True)
    except SetupError as exc:
        await asyncio.to_thread(release_claim, store, run_prefix, token=token)
        return not_started(exc)
    runs_dir = run_dir.parent
    lease = RunLease(store, LeaseTerms(root=str(ledger), lease_id=lease_id_of(run_id, report_root), run_id=run_id,
                                       stale_after_s=settings.lease_stale_s))
    watch = LeaseWatch()
    heartbeat: asyncio.Task[None] | None = None

    async def stopped_report(stop: str) -> str:
        """Write the report of this run, stopped after it began sending; returns where it went."""
        return await _report_of_stopped_run(
            plan, settings=settings, store=store, run_dir=run_dir, run_prefix=run_prefix,
            job_ledger=ledger.child(plan.job_id), stop=stop, summary_extra={
                "run_id": run_id, "job_id": plan.job_id, "dry_run": dry_run, "shards": len(plan.shards),
                "retry_failed": retry_failed, "include_rejected": list(reworked),
                "seconds": round(time.monotonic() - started, 3), "settings": settings.public_dict(),
                "report": str(run_prefix), "report_root": str(report_root), "manifest": shown_manifest,
                "mapping": shown_mapping, "mapping_digest": plan.mapping_digest})

    sending = False
    published = False  # the run's own report is under its report location
    try:
        only_rows = failed_rows_of(store, report_root.child(retry_failed), reworked) if retry_failed else None
        plan = await plan_task(manifest, str(run_dir), today, mapping, shown_mapping)
        if not dry_run:  # a dry run sends nothing, so it needs no lease and waits for no one
            partitions = await asyncio.to_thread(partitions_in, [s.rows for s in plan.shards])
            await asyncio.to_thread(lease.acquire, partitions)
            heartbeat = asyncio.create_task(keep_lease(lease, watch))
        if retry_failed:  # the CLI's gate checked this already; a deployment run is checked here
            check_same_job(store, report_root.child(retry_failed), plan.job_id)
        sending = not dry_run  # from here on uploads and attaches go out
        planned = time.monotonic()
        logger = get_run_logger()
        logger.info("planned %d rows: %d rejected, %d shards", plan.rows_in, plan.rows_rejected, len(plan.shards))
        progress = RunProgress(plan.rows_in)
        await progress.start(plan.rows_rejected)
        timeline = Timeline()
        timeline.rows_settled(plan.rows_rejected, time.time())
        job_ledger = ledger.child(plan.job_id)
        api_stats: dict[str, Any] = {}
        shard_seconds: dict[str, float] = {}
        if settings.shard_deployment:  # scale-out: one run of the shard deployment per shard, on the work pool
            from flows.fanout import fan_out_shards

            fanned = await fan_out_shards(
                plan, settings=settings, run_id=run_id, run_dir=run_dir, ledger_root=job_ledger,
                run_date=today, dry_run=dry_run, resend_unknown=resend_unknown, allow_reattach=allow_reattach,
                retry_failed_report=report_root.child(retry_failed) if retry_failed else None,
                include_rejected=reworked, progress=progress, lease=None if dry_run else lease.terms,
            )
            api_stats, stopped_early, store_refused = fanned.api, fanned.stopped_early, fanned.store_refused
            for result in fanned.shard_results:
                shard_seconds[result["shard"]] = result["seconds"]
                timeline.merge(Timeline.from_dict(result.get("timeline") or {}))
        else:
            async with run_mode(settings, dry_run=dry_run, payloads_dir=run_dir / "payloads",
                                timeline=timeline) as mode:
                services = shard_services(
                    settings, mode, store=store, run_date=today, ledger_root=job_ledger, run_id=run_id,
                    resend_unknown=resend_unknown, allow_reattach=allow_reattach, only_rows=only_rows,
                    timeline=timeline,
                )
                watch.guard(services.budget)
                async with progress.api_rate(timeline) if isinstance(mode, LiveMode) else nullcontext():
                    shard_seconds = await _work_shards(plan, services, settings, str(run_dir), progress)
                api_stats = mode.api_stats()
            stopped_early = services.budget.reason() if services.budget.tripped else None
            store_refused = services.budget.store_refused

        worked = time.monotonic()
        # The index stays quick to load: fold the segments this run wrote. Not after the store refused a write this
        # run: it would retry each partition's write to the same store (seconds each), and the next run folds them.
        if not dry_run and not store_refused:
            await asyncio.to_thread(compact_after_run, store, job_ledger, settings.max_shards)
        parts = [Path(plan.rejects_path)] + [run_dir / "parts" / f"{s.name}.parquet" for s in plan.shards]
        parquet_path, csv_path, table = assemble_report(parts, run_dir / "report", mask_secret=mask_secret)
        summary = build_summary(table, plan.rows_in, {
            "run_id": run_id, "job_id": plan.job_id, "dry_run": dry_run, "shards": len(plan.shards),
            "retry_failed": retry_failed, "include_rejected": list(reworked),
            "seconds": round(time.monotonic() - started, 3),
            "timings_s": {"plan": round(planned - started, 3), "shards": round(worked - planned, 3)},
            "api": api_stats, "settings": settings.public_dict(),
            "report": str(run_prefix), "report_root": str(report_root), "manifest": shown_manifest,
            "mapping": shown_mapping, "mapping_digest": plan.mapping_digest,
            "shard_seconds": shard_seconds,
            "stopped_early": stopped_early,
        })
        if dry_run:  # what the real run would do, per document, from the ledger
            summary["dry_run_preview"] = preview(table)
        files = {"rows.parquet": parquet_path, "rows.csv": csv_path,
                 **await asyncio.to_thread(write_report_page, summary, timeline, run_dir / "report")}
        if dry_run:
            files.update({f"payloads/{p.name}": p for p in sorted((run_dir / "payloads").glob("*.jsonl"))})
        await asyncio.to_thread(publish_report, store, run_prefix, files, summary)
        published = True
        if summary["stopped_early"]:
            logger.error("%s; the report names the rows not tried", summary["stopped_early"])
        if not dry_run and await asyncio.to_thread(mark_completed, store, report_uri, plan.job_id, summary):
            logger.info("job %s complete: no failed or unknown rows", plan.job_id)
        await progress.finish()
        await _artifacts(summary)
        return end_run(summary, rejections_fail=settings.rejections_fail_run)
    except SetupError as exc:
        if sending:  # what was sent is in the ledger: never "cannot start" for a run that sent something
            where = str(run_prefix) if published else await stopped_report(f"stopped after sending began: {exc}")
            # the report's place first: the CLI's one line keeps the start of the message
            raise StoppedAfterSending(f"stopped after sending began ({where}): {exc}") from None
        await asyncio.to_thread(release_claim, store, run_prefix, token=token)
        return not_started(exc)
    except Exception as exc:
        # An error nobody foresaw still leaves a report of every row once sending began, and the run ends Failed.
        # Only its type goes in the report, the flow run's state and the CLI's line: its message may quote a row.
        if not sending:
            raise
        kind = exc.error_type if isinstance(exc, ShardBroke) else type(exc).__name__
        where = str(run_prefix) if published else await stopped_report(
            f"stopped after sending began: unexpected {kind}")
        log.error("stopped after sending began by an unexpected %s; the report: %s", kind, where)
        raise StoppedAfterSending(f"stopped after sending began ({where}): unexpected {kind}") from None
    except (asyncio.CancelledError, KeyboardInterrupt) as exc:
        # Cancelled once sending began: the report of every row is still written (within a bounded time, since
        # whoever cancelled is waiting), then the cancellation goes on.
        if sending and not published:
            stop = f"stopped after sending began: cancelled ({type(exc).__name__})"
            try:
                where = await asyncio.wait_for(stopped_report(stop), STOPPED_REPORT_WAIT_S)
            except (TimeoutError, asyncio.CancelledError):
                where = "no report written: cancelled again or out of time"
            log.error("stopped after sending began by a cancellation; the report: %s", where)
        raise
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.to_thread(lease.release)
        # The run folder holds the manifest's rows (personal data) and ~250 bytes of scratch per row. Nothing in it
        # is needed once the report is published, and a rerun of the job starts a folder of its own (its
        # progress is in the ledger, on S3), so it goes whether the run ended well or not.
        try:
            await asyncio.to_thread(remove_tree, run_dir, root=runs_dir)
        except SetupError as exc:  # the folder was swapped for a link while the run worked: left alone, said
            log.warning("run folder not removed: %s", exc)


async def run_attach(manifest: str, report_uri: str, **options: Any) -> dict[str, Any]:
    """Run :func:`attach_manifest` and return its summary, whether the run ended ``Completed`` or ``Failed`` with a
    report; an error that stopped the run before its report is raised as it happened."""
    state = await attach_manifest(manifest, report_uri, return_state=True, **options)
    return await summary_of(state)


async def _report_of_stopped_run(plan: PlanResult, **kwargs: Any) -> str:
    """Where the report of a run stopped after sending went (``flows.stopped_report``), or why there is none."""
    try:
        return await asyncio.to_thread(write_stopped_report, plan, **kwargs)
    except Exception as exc:  # the stop is what the caller reports; the report's own failure is said with it
        log.error("the stopped run's report was not written: %s", type(exc).__name__)
        return f"no report written: {type(exc).__name__}"


async def _work_shards(plan: PlanResult, services: ShardServices, settings: Settings, run_dir: str,
                       progress: RunProgress) -> dict[str, float]:
    """Work every shard, ``shard_concurrency`` at a time; returns each shard's seconds."""
    gate = asyncio.Semaphore(settings.shard_concurrency)
    seconds: dict[str, float] = {}

    async def one(spec: ShardSpec) -> None:
        async with gate:
            result = await shard_task(spec, services, run_dir)
        seconds[spec.name] = result["seconds"]
        await progress.advance(sum(result["counts"].values()))

    # Every shard ends before the run goes on, even when one raised: the others must not go on writing report
    # parts while the run reports on its folder and removes it.
    results = await asyncio.gather(*(one(s) for s in plan.shards), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return seconds


async def _artifacts(summary: dict[str, Any]) -> None:
    rows = [{"status": k, "rows": v} for k, v in sorted(summary["by_status"].items())]
    await acreate_table_artifact(rows, key="kyc-attach-summary", description=f"Outcome of run {summary['run_id']}")
    await acreate_markdown_artifact(report_markdown(summary), key="kyc-attach-report")
    page = f"{summary['report'].rstrip('/')}/report.html"
    await acreate_link_artifact(report_link(page), link_text=f"report.html of run {summary['run_id']}",
                                key="kyc-attach-report-page", description="The run's report page (charts, next steps)")
