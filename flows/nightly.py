"""The nightly deployment: every manifest under an inbox prefix that no earlier run completed, oldest first;
then complete jobs whose rows were rejected for reasons that can go away without editing the manifest
(``connectors.jobs.REWORKABLE_REJECTS``), on at most ``KYC_ATTACH_REWORK_REJECTED_NIGHTS`` nights.

Each manifest is one ``attach_manifest`` subflow run, one after another (the deployment allows one run at
a time, so two nights never work the same manifest). A manifest whose run fails to start or crashes does
not stop the others; the nightly run then ends failed, naming it. Wiring only: the listing and the job
markers are ``connectors.jobs``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Failed
from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import SetupError
from connectors.jobs import MANIFEST_SUFFIXES, REWORKABLE_REJECTS, ManifestObject, completion_of, list_manifests
from connectors.objects import ObjectStore
from flows.run_end import not_started
from flows.settings import load_settings
from flows.stores import make_store

# Each parameter is its own flow parameter, not one object: a deployment run can then override one
# (``--param dry_run=true``) and keep the deployment's others; with a single ``params`` object Prefect
# replaces the whole object, so changing one value meant restating them all.
Inbox = Annotated[str, Field(description="Prefix the day's manifests land under: s3://bucket/prefix/ or a folder.")]
ReportUri = Annotated[str, Field(description="Where reports go: s3://bucket/prefix or a folder.")]
MappingFile = Annotated[str | None, Field(description="Legacy mapping file (path or s3:// uri) for every manifest.")]
DryRun = Annotated[bool, Field(description="Check only; call no API (jobs stay open).")]
MaxManifests = Annotated[int | None, Field(ge=1, description="Work at most this many manifests per night.")]
Suffixes = Annotated[tuple[str, ...], Field(description="File endings that count as manifests.")]
SettleSeconds = Annotated[float, Field(ge=0, le=3600, description="Wait this long before listing the inboxes (a run "
                                       "started by a manifest's arrival lets the rest of the burst land).")]


async def shown_manifest(manifest: str, state: State[Any], n: int) -> str:
    """How a parent names a manifest in hashed report mode: as its own run shows it in Prefect's parameters (the
    keyed digest of its location), or by that run when it stopped before it read the ledger's secret; never by its
    location, whose key can name a person. ``n`` numbers the manifest among those of its inbox."""
    from prefect.client.orchestration import get_client

    flow_run_id = state.state_details.flow_run_id
    if flow_run_id is None:
        return f"manifest {n}"
    async with get_client() as client:
        shown = (await client.read_flow_run(flow_run_id)).parameters.get("manifest")
    return shown if isinstance(shown, str) and shown != manifest else f"the manifest of flow run {flow_run_id}"


def pending_manifests(store: ObjectStore, inbox: str, report_uri: str,
                      suffixes: tuple[str, ...] = MANIFEST_SUFFIXES, max_reworks: int = 0
                      ) -> tuple[list[ManifestObject], list[str], dict[str, str]]:
    """(manifests still to run, oldest first; uris skipped because their job is complete; complete jobs whose
    rows rejected for reasons that may have gone away are worked again: uri → the run to take them from)."""
    todo: list[ManifestObject] = []
    done: list[ManifestObject] = []
    rework: dict[str, str] = {}
    for m in list_manifests(store, inbox, suffixes):
        completion = completion_of(store, report_uri, m.job_id)
        if completion is None:
            todo.append(m)
        elif completion.wants_rework(max_reworks) and completion.run_id is not None:
            rework[m.uri] = completion.run_id
        else:
            done.append(m)
    return todo, [m.uri for m in done], rework


async def run_manifests(manifests: list[str], *, report_uri: str, mapping: str | None, dry_run: bool,
                        rework: dict[str, str] | None = None, hashed: bool = False) -> dict[str, Any]:
    """Run ``attach_manifest`` for each manifest in turn, as subflows; failures (a run stopped, or ended ``Failed``
    with failed or unknown rows) are collected, not raised.

    A manifest in ``rework`` is run as ``--retry-failed RUN --include-rejected`` the re-workable reasons. The
    result, the logs and the parent's state name each manifest by its location, or with ``hashed`` (hashed report
    mode) as :func:`shown_manifest` does."""
    from flows.attach_flow import attach_manifest
    from flows.run_end import summary_of

    logger = get_run_logger()
    runs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for n, manifest in enumerate(manifests, start=1):
        retry = (rework or {}).get(manifest)
        state = await attach_manifest(manifest, report_uri, dry_run=dry_run, mapping=mapping, retry_failed=retry,
                                      include_rejected=list(REWORKABLE_REJECTS) if retry else None,
                                      return_state=True)
        uri = await shown_manifest(manifest, state, n) if hashed else manifest
        try:
            summary = await summary_of(state)
        except Exception:  # stopped before its report: the state's message says why
            errors[uri] = state.message or state.name or "did not complete"
            logger.error("manifest %s did not complete: %s", uri, errors[uri])
            continue
        runs[uri] = {k: summary.get(k) for k in ("run_id", "rows_in", "by_status", "report")}
        logger.info("manifest %s: %s", uri, runs[uri]["by_status"])
        if not state.is_completed():  # a report with failed or unknown rows: this parent fails too, at the end
            errors[uri] = state.message or "ended Failed"
            logger.error("manifest %s: %s", uri, errors[uri])
    return {"runs": runs, "errors": errors}


class Carrier(BaseModel):
    """One more inbox of the nightly run: where its manifests land, the mapping of their layout, and (if the user
    wants one) its own report location."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inbox: str = Field(description="Prefix its manifests land under: s3://bucket/prefix/ or a folder.")
    mapping: str | None = Field(None, description="Legacy mapping file (path or s3:// uri) of its manifests.")
    report_uri: str | None = Field(None, description="Its own report location; else the run's report_uri.")


Carriers = Annotated[list[Carrier], Field(description="More inboxes, each with its mapping (and report location): "
                                                      "a new carrier is a parameter, not a new deployment.")]


@flow(name="kyc-attach-nightly")
async def nightly(report_uri: ReportUri, inbox: Inbox | None = None, mapping: MappingFile = None,
                  dry_run: DryRun = False, max_manifests: MaxManifests = None,
                  suffixes: Suffixes = MANIFEST_SUFFIXES, carriers: Carriers | None = None,
                  settle_s: SettleSeconds = 0) -> dict[str, Any] | State[Any]:
    """Run every manifest under ``inbox`` and under each carrier's inbox that no earlier run completed, oldest
    first within an inbox, inbox after inbox."""
    inboxes = ([Carrier(inbox=inbox, mapping=mapping)] if inbox else []) + list(carriers or [])
    if not inboxes:
        return not_started(SetupError("inbox: give an inbox or at least one carrier"))
    try:
        settings = load_settings()
    except SetupError as exc:
        return not_started(exc)
    if settle_s:
        await asyncio.sleep(settle_s)
    needs_s3 = any(x.startswith("s3://") for c in inboxes for x in (c.inbox, c.report_uri or report_uri))
    try:  # a block that cannot be read: one line, as the run it would start says it
        store = make_store(settings, s3=needs_s3)
    except SetupError as exc:
        return not_started(exc)
    result: dict[str, Any] = {"runs": {}, "errors": {}, "skipped": []}
    budget = max_manifests
    for carrier in inboxes:
        reports = carrier.report_uri or report_uri
        todo, skipped, rework = pending_manifests(store, carrier.inbox, reports, suffixes,
                                                  settings.rework_rejected_nights)
        uris = [m.uri for m in todo] + list(rework)
        if budget is not None:
            uris, budget = uris[:budget], max(0, budget - len(uris))
        get_run_logger().info("nightly: %s: %d manifests to run, %d complete jobs with rejected rows to work again, "
                              "%d already completed", carrier.inbox, len(todo), len(rework), len(skipped))
        done = await run_manifests(uris, report_uri=reports, mapping=carrier.mapping, dry_run=dry_run, rework=rework,
                                   hashed=settings.report_s3_uri == "hashed")
        result["runs"].update(done["runs"])
        result["errors"].update(done["errors"])
        result["skipped"].extend(skipped)
    if result["errors"]:  # a Failed state, not an exception: each manifest's own run says why, without a traceback
        return Failed(message=f"{len(result['errors'])} manifest run(s) failed or did not complete: "
                      + ", ".join(sorted(result["errors"])), data=result)
    return result
