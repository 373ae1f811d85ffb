"""The migration deployment: one legacy manifest, or every part under a prefix, through a mapping.

Parts run one after another in name order (``part-0001.csv``, ``part-0002.csv``, ...), each as an
``attach_manifest`` subflow; parts an earlier run completed are skipped, so re-running a migration resumes
it, and so is a single manifest (location and content) an earlier run completed. Scale-out across machines
happens inside each part (shards on a work pool), not across parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Failed

from connectors.errors import KycAttachError, SetupError
from connectors.job_ids import job_id_of, sha256_of_file
from connectors.jobs import MANIFEST_SUFFIXES, Completion, completion_of, list_manifests
from connectors.mapping_file import load_mapping
from connectors.objects import ObjectStore
from connectors.s3 import Location
from flows.nightly import run_manifests
from flows.run_end import not_started
from flows.settings import load_settings
from flows.stores import make_store


def completed_before(store: ObjectStore, source: str, report_uri: str, mapping_digest: str | None
                     ) -> Completion | None:
    """The marker of a run that completed this manifest file as it is now (its location and content: its job
    id) through the same mapping; None when none did."""
    loc = Location.parse(source)
    try:
        content_id = store.manifests().head(loc).etag if loc.is_s3 else sha256_of_file(Path(loc.key))
    except (KycAttachError, OSError):
        return None  # unreadable: the run says why (SetupError), not this check
    return _through(completion_of(store, report_uri, job_id_of(source, content_id)), mapping_digest)


def _through(done: Completion | None, mapping_digest: str | None) -> Completion | None:
    """``done`` if its run read the rows through the mapping given now: a corrected mapping is work to do again
    (what the first mapping attached is skipped as attached; what it rejected goes now)."""
    return done if done is not None and done.mapping_digest == mapping_digest else None


@flow(name="kyc-attach-migration")
async def migration(source: str, report_uri: str, mapping: str | None = None, dry_run: bool = False
                    ) -> dict[str, Any] | State[Any]:
    """Migrate ``source`` (a manifest, or a prefix ending in '/' holding manifest parts) with ``mapping``."""
    needs_s3 = any(x.startswith("s3://") for x in (source, report_uri, mapping or ""))
    try:  # refused before any part runs (a setting, a block or the mapping that cannot be read): one line
        settings = load_settings()
        store = make_store(settings, s3=needs_s3)
        loc = Location.parse(source)
        digest = load_mapping(mapping, store).digest() if mapping else None
    except SetupError as exc:
        return not_started(exc)
    rework: dict[str, str] = {}
    is_prefix = source.endswith("/") or (Path(loc.key).is_dir() if not loc.is_s3 else not store.manifests().exists(loc))
    if is_prefix:
        parts = sorted(list_manifests(store, source, MANIFEST_SUFFIXES), key=lambda m: m.uri)
        todo = [m.uri for m in parts
                if dry_run or _through(completion_of(store, report_uri, m.job_id), digest) is None]
        get_run_logger().info("migration: %d parts, %d to run", len(parts), len(todo))
    elif not dry_run and (done := completed_before(store, source, report_uri, digest)) is not None:
        # the same file (location and content) completed before: as a part would be, skipped; but rows it rejected
        # for something outside the file (an object restored since) are worked again, as the nightly run does
        if done.wants_rework(settings.rework_rejected_nights) and done.run_id is not None:
            todo, rework = [source], {source: done.run_id}
            get_run_logger().info("migration: %s was completed by an earlier run; working its rows rejected "
                                  "missing_object/party_not_found again", source)
        else:
            todo = []
            get_run_logger().info("migration: %s was completed by an earlier run; nothing to do", source)
    else:
        todo = [source]
    result = await run_manifests(todo, report_uri=report_uri, mapping=mapping, dry_run=dry_run, rework=rework,
                                 hashed=settings.report_s3_uri == "hashed")
    if result["errors"]:  # a Failed state, not an exception: each part's own run says why, without a traceback
        return Failed(data=result, message=f"{len(result['errors'])} part(s) did not complete: "
                      + ", ".join(sorted(result["errors"])))
    return result
