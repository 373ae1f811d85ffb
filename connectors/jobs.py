"""Which manifests wait to be run, and which jobs are complete: the inbox listing and the ``COMPLETED`` marker.

A job (one manifest's location and content, see ``connectors.job_ids``) is complete when a
real run of it ended with no row ``failed`` or ``unknown``; the flow then writes
``<report_uri>/_ledger/<job_id>/COMPLETED`` next to the job's ledger. The nightly deployment skips manifests
whose job has the marker, so a manifest is worked until it is done, then never again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.errors import SetupError
from connectors.job_ids import job_id_of, sha256_of_file
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.codes import Reason

MANIFEST_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
COMPLETED = "COMPLETED"
_EPOCH = datetime.fromtimestamp(0, UTC)  # a listing without a time of change sorts first
# Rejections that can end without editing the manifest: an object put in place, a party added or fixed at Fin
# (an object whose access is denied is reported missing_object too). A complete job holding such rows is
# worked again by the nightly deployment, for a bounded number of nights.
REWORKABLE_REJECTS: tuple[Reason, ...] = (Reason.missing_object, Reason.party_not_found)


def checked_rework(include_rejected: list[str] | tuple[str, ...] | None, retry_failed: str | None) -> tuple[str, ...]:
    """The reasons ``--include-rejected`` names, or ``SetupError``: they need ``--retry-failed`` and must be among
    ``REWORKABLE_REJECTS`` (rejections that can go away without editing the manifest)."""
    reworked = tuple(include_rejected or ())
    if reworked and (not retry_failed or not set(reworked) <= set(REWORKABLE_REJECTS)):
        raise SetupError("--include-rejected needs --retry-failed and takes only " + ",".join(REWORKABLE_REJECTS))
    return reworked


@dataclass(frozen=True)
class ManifestObject:
    """A manifest waiting in an inbox prefix: where it is, its content id (ETag) and when it arrived."""

    uri: str
    content_id: str
    modified: datetime

    @property
    def job_id(self) -> str:
        """The job this manifest is (the one formula, ``connectors.job_ids.job_id_of``)."""
        return job_id_of(self.uri, self.content_id)


def list_manifests(store: ObjectStore | None, prefix: str, suffixes: tuple[str, ...] = MANIFEST_SUFFIXES
                   ) -> list[ManifestObject]:
    """Manifests under an ``s3://`` prefix (or a local folder; ``store`` may then be None), oldest first (then by
    name); listed with the manifest role's credentials."""
    found: list[ManifestObject] = []
    for loc, info in (store or ObjectStore(None)).manifests().list_under(Location.parse(prefix)):
        if loc.key.lower().endswith(suffixes):
            # the content id: S3's ETag, or the bytes of a local file (a changed file is a new job)
            content_id = info.etag if loc.is_s3 else sha256_of_file(Path(loc.key))
            found.append(ManifestObject(str(loc), content_id, info.modified or _EPOCH))
    return sorted(found, key=lambda m: (m.modified, m.uri))


def completed_marker(report_uri: str, job_id: str) -> Location:
    """Where the ``COMPLETED`` marker of a job lives."""
    return ledger_root(report_uri).child(job_id, COMPLETED)


def ledger_root(report_uri: str) -> Location:
    """``<report_uri>/_ledger``, written one way (``s3://b//reports`` and ``s3://b/reports`` are one ledger)."""
    return Location.parse(report_uri).normalised().child("_ledger")


def is_completed(store: ObjectStore, report_uri: str, job_id: str) -> bool:
    """Whether a real run of this job ended with every row settled (no failed or unknown rows)."""
    return store.exists(completed_marker(report_uri, job_id))


@dataclass(frozen=True)
class Completion:
    """What a complete job's marker says: its last run, its rows rejected for reasons that may since have
    gone away (``REWORKABLE_REJECTS``), and how many re-works already tried them."""

    run_id: str | None
    reworkable_rejected: int
    reworks: int
    mapping_digest: str | None = None  # the mapping the job's rows were read through (None: no mapping, or old)

    def wants_rework(self, max_reworks: int) -> bool:
        """Whether the nightly deployment should work its re-workable rejected rows again."""
        return self.reworkable_rejected > 0 and self.reworks < max_reworks and self.run_id is not None


def completion_of(store: ObjectStore, report_uri: str, job_id: str) -> Completion | None:
    """The marker of a complete job; None while the job is open."""
    marker = completed_marker(report_uri, job_id)
    if not store.exists(marker):
        return None
    body = json.loads(store.read(marker))
    return Completion(body.get("run_id"), int(body.get("reworkable_rejected", 0)), int(body.get("reworks", 0)),
                      body.get("mapping_digest"))


def mark_completed(store: ObjectStore, report_uri: str, job_id: str, summary: dict[str, Any]) -> bool:
    """Write the marker when the run's summary allows it; returns whether it did.

    A dry run, or a run with ``failed`` or ``unknown`` rows, leaves the job open (a later run resumes it).
    """
    by_status = summary.get("by_status", {})
    if summary.get("dry_run") or by_status.get("failed", 0) or by_status.get("unknown", 0):
        return False
    by_reason = summary.get("by_reason", {})
    earlier = completion_of(store, report_uri, job_id)
    # a re-work run (one that included rejected rows) counts one more night; any other run starts afresh
    reworks = (earlier.reworks + 1 if earlier else 1) if summary.get("include_rejected") else 0
    body = {"run_id": summary.get("run_id"), "rows_in": summary.get("rows_in"), "by_status": by_status,
            "reworkable_rejected": sum(by_reason.get(r, 0) for r in REWORKABLE_REJECTS), "reworks": reworks,
            "mapping_digest": summary.get("mapping_digest"),
            "completed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    store.write(completed_marker(report_uri, job_id), json.dumps(body, sort_keys=True).encode(),
                content_type="application/json", overwrite=True)
    return True
