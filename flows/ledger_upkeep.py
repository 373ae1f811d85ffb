"""The document index's upkeep at the end of a live run: fold the segments the run wrote into compacted files."""

from __future__ import annotations

import logging
import time

from connectors.ledger import documents_root
from connectors.ledger_index import compact
from connectors.objects import ObjectStore
from connectors.s3 import Location
from transforms.ledger_layout import DEFAULT_SLOTS

log = logging.getLogger("kyc_attach.ledger")
# A run folds its segments into a small compacted file of their own; every MERGE_AT-th file of a partition
# merges them all into one. Rewriting a partition's large file at every run cost ~0.7 s of CPU per partition at
# ten million documents (bench/bench_ledger.py), ~3 minutes a run; a few small files cost readers little.
MERGE_AT = 8


def compact_after_run(store: ObjectStore, job_ledger: Location, slots: int = DEFAULT_SLOTS) -> None:
    """Fold the segments of the index into its compacted files, their rows grouped by the planner's ``slots``
    (``max_shards``); a failure is a warning, never the run's end (every record is still in a segment, and the
    next run or ``kyc-attach ledger compact`` folds it)."""
    start = time.monotonic()
    try:
        done = compact(store, documents_root(job_ledger), merge_at=MERGE_AT, slots=slots)
    except Exception as exc:
        log.warning("ledger compaction stopped (%s); the segments stay and are read as they are",
                       type(exc).__name__)
        return
    log.info("ledger: compacted %d partitions (%d segments folded) in %.1f s", len(done),
                sum(c.segments_folded for c in done), time.monotonic() - start)
