"""Ledgers kept under a report location before the tenant ledger, and their adoption into it.

Before the ledger became one per Fin tenant, each report location held its own: ``<report>/_ledger/_documents/``
(the document index) and ``<report>/_ledger/<job_id>/`` (per-job records of older runs, still read). Their
records say what was attached, so a run must not start while one is left out: ``kyc-attach ledger adopt`` copies
its segments into the tenant ledger (same layout; segment names are unique, so a second adoption copies nothing
new) and leaves a marker, ``<report>/_ledger/_adopted/<digest>.json``, naming the ledger it went into.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location

OLD_ROOT = "_ledger"
ADOPTED = "_adopted"
_CARRIED = "_documents"  # the one folder starting with "_" that holds records; _active and _adopted do not
# What a ledger's records are kept in: segments, compacted partitions (connectors.ledger_index), and the secret of
# the detail digests (connectors.ledger), without which the adopted digests could not be compared.
_RECORD_SUFFIXES = (".jsonl", ".parquet")
_DETAILS_SECRET = f"{_CARRIED}/_details_secret"
_CONTENT_TYPES = {".jsonl": "application/x-ndjson", ".parquet": "application/vnd.apache.parquet"}


@dataclass(frozen=True)
class Adoption:
    """What one adoption did: segments copied, segments the ledger held already, and its marker."""

    copied: int
    present: int
    marker: Location


def old_ledger(report_root: Location) -> Location:
    """Where a report location kept its ledger before the tenant ledger."""
    return report_root.normalised().child(OLD_ROOT)


def adoption_marker(report_root: Location, ledger: Location) -> Location:
    """The marker saying this report location's ledger went into ``ledger``: one per ledger adopted into."""
    digest = hashlib.sha256(str(ledger).encode()).hexdigest()[:16]
    return old_ledger(report_root).child(ADOPTED, f"{digest}.json")


def old_segments(store: ObjectStore, report_root: Location, ledger: Location) -> Iterator[tuple[Location, str]]:
    """The record files of a report location's old ledger (segments, compacted partitions, the digests' secret),
    each with its path relative to that ledger (the tenant ledger's own files are left out when it lives inside
    the old place)."""
    root = old_ledger(report_root)
    for loc in store.list(root):
        rel = _relative(loc, root)
        if rel is None or not (rel.endswith(_RECORD_SUFFIXES) or rel == _DETAILS_SECRET) or _within(loc, ledger):
            continue
        first = rel.split("/", 1)[0]
        if first.startswith("_") and first != _CARRIED:
            continue
        yield loc, rel


def check_adopted(store: ObjectStore, report_root: Location, ledger: Location) -> None:
    """``SetupError`` when the report location holds an old ledger that was not adopted into ``ledger``."""
    if old_ledger(report_root) == ledger or store.exists(adoption_marker(report_root, ledger)):
        return
    if next(old_segments(store, report_root, ledger), None) is not None:
        raise SetupError(f"report location {report_root} holds a ledger from before the tenant ledger; adopt it "
                         f"first: kyc-attach ledger adopt {report_root}")


def adopt(store: ObjectStore, report_root: Location, ledger: Location) -> Adoption:
    """Copy the report location's old ledger into ``ledger`` (never overwriting) and mark it adopted."""
    if old_ledger(report_root) == ledger:
        raise SetupError(f"report location {report_root}: its ledger is the tenant ledger already "
                         "(KYC_ATTACH_LEDGER_URI points at it); nothing to adopt")
    copied = present = 0
    for loc, rel in old_segments(store, report_root, ledger):
        target = ledger.child(rel)
        if store.exists(target):
            present += 1
            continue
        store.write(target, store.read(loc),
                    content_type=_CONTENT_TYPES.get(PurePosixPath(rel).suffix, "application/octet-stream"))
        copied += 1
    if copied + present == 0:
        raise SetupError(f"report location {report_root}: no ledger under it to adopt (nothing in {OLD_ROOT}/)")
    marker = adoption_marker(report_root, ledger)
    body = {"ledger": str(ledger), "adopted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "copied": copied, "present": present}
    store.write(marker, json.dumps(body, sort_keys=True).encode(), content_type="application/json",
                overwrite=True)
    return Adoption(copied, present, marker)


def _relative(loc: Location, root: Location) -> str | None:
    """``loc``'s path below ``root`` with ``/`` separators (local listings give absolute paths)."""
    if loc.is_s3:
        prefix = root.key.rstrip("/") + "/"
        return loc.key[len(prefix):] if loc.key.startswith(prefix) else None
    try:
        return PurePosixPath(loc.key).relative_to(PurePosixPath(root.key)).as_posix()
    except ValueError:
        return None


def _within(loc: Location, folder: Location) -> bool:
    return loc.bucket == folder.bucket and _relative(loc, folder) is not None
