"""The nightly deployment: every manifest under an inbox prefix that no earlier run completed, oldest first;
then complete jobs whose rows were rejected for reasons that can go away without editing the manifest
(``connectors.jobs.REWORKABLE_REJECTS``), on at most ``KYC_ATTACH_REWORK_REJECTED_NIGHTS`` nights.

Each manifest is one ``attach_manifest`` subflow run, one after another (the deployment allows one run at
a time, so two nights never work the same manifest). A manifest whose run fails to start or crashes does
not stop the others; the nightly run then ends failed, naming it. Wiring only: the listing and the job
markers are ``connectors.jobs``.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from connectors.jobs import MANIFEST_SUFFIXES, REWORKABLE_REJECTS, ManifestObject, completion_of, list_manifests
from connectors.objects import ObjectStore
from flows.runtime import make_store
from flows.settings import load_settings

# Each parameter is its own flow parameter, not one object: a deployment run can then override one
# (``--param dry_run=true``) and keep the deployment's others; with a single ``params`` object Prefect
# replaces the whole object, so changing one value meant restating them all.
Inbox = Annotated[str, Field(description="Prefix the day's manifests land under: s3://bucket/prefix/ or a folder.")]
ReportUri = Annotated[str, Field(description="Where reports go: s3://bucket/prefix or a folder.")]
MappingFile = Annotated[str | None, Field(description="Legacy mapping file (path or s3:// uri) for every manifest.")]
DryRun = Annotated[bool, Field(description="Check only; call no API (jobs stay open).")]
MaxManifests = Annotated[int | None, Field(ge=1, description="Work at most this many manifests per night.")]
Suffixes = Annotated[tuple[str, ...], Field(description="File endings that count as manifests.")]


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
                        rework: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``attach_manifest`` for each manifest in turn, as subflows; failures are collected, not raised.

    A manifest in ``rework`` is run as ``--retry-failed RUN --include-rejected`` the re-workable reasons."""
    from flows.attach_flow import attach_manifest

    logger = get_run_logger()
    runs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for uri in manifests:
        retry = (rework or {}).get(uri)
        state = await attach_manifest(uri, report_uri, dry_run=dry_run, mapping=mapping, retry_failed=retry,
                                      include_rejected=list(REWORKABLE_REJECTS) if retry else None,
                                      return_state=True)
        if state.is_completed():
            summary = await state.aresult()
            runs[uri] = {k: summary.get(k) for k in ("run_id", "rows_in", "by_status", "report")}
            logger.info("manifest %s: %s", uri, runs[uri]["by_status"])
        else:
            errors[uri] = state.message or state.name or "did not complete"
            logger.error("manifest %s did not complete: %s", uri, errors[uri])
    return {"runs": runs, "errors": errors}


@flow(name="kyc-attach-nightly")
async def nightly(inbox: Inbox, report_uri: ReportUri, mapping: MappingFile = None, dry_run: DryRun = False,
                  max_manifests: MaxManifests = None, suffixes: Suffixes = MANIFEST_SUFFIXES) -> dict[str, Any]:
    """Run every manifest under ``inbox`` that no earlier run completed, oldest first."""
    settings = load_settings()
    needs_s3 = inbox.startswith("s3://") or report_uri.startswith("s3://")
    store = make_store(settings, s3=needs_s3)
    todo, skipped, rework = pending_manifests(store, inbox, report_uri, suffixes, settings.rework_rejected_nights)
    uris = [m.uri for m in todo] + list(rework)
    if max_manifests is not None:
        uris = uris[:max_manifests]
    get_run_logger().info("nightly: %d manifests to run, %d complete jobs with rejected rows to work again, "
                          "%d already completed", len(todo), len(rework), len(skipped))
    result = await run_manifests(uris, report_uri=report_uri, mapping=mapping, dry_run=dry_run, rework=rework)
    result["skipped"] = skipped
    if result["errors"]:
        raise RuntimeError(f"{len(result['errors'])} manifest run(s) did not complete: "
                           + ", ".join(sorted(result["errors"])))
    return result
