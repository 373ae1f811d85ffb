"""The document index's upkeep at the end of a live run: compact the partitions the run wrote segments into."""

from __future__ import annotations

import logging
import time

from connectors.ledger import documents_root
from connectors.ledger_index import compact
from connectors.objects import ObjectStore
from connectors.s3 import Location

log = logging.getLogger("kyc_attach.ledger")


def compact_after_run(store: ObjectStore, job_ledger: Location) -> None:
    """Fold the segments of the index into its compacted files; a failure is a warning, never the run's end
    (every record is still in a segment, and the next run or ``kyc-attach ledger compact`` folds it)."""
    start = time.monotonic()
    try:
        done = compact(store, documents_root(job_ledger))
    except Exception as exc:
        log.warning("ledger compaction stopped (%s); the segments stay and are read as they are",
                       type(exc).__name__)
        return
    log.info("ledger: compacted %d partitions (%d segments folded) in %.1f s", len(done),
                sum(c.segments_folded for c in done), time.monotonic() - start)
