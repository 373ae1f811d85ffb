"""``kyc-attach history`` and ``kyc-attach ledger compact``: read and fold the document index (wiring only).

Neither imports Prefect: a look-up starts in a second, not in the time Prefect takes to import.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq

from connectors.ledger_index import Compacted, compact, partitions, read_records
from connectors.objects import ObjectStore
from connectors.s3 import Location
from flows.settings import load_settings
from flows.stores import make_store
from transforms.exactly_once import partition_of
from transforms.ledger_history import HistoryQuery, StateChange, as_table, history


def index_root(report_uri: str) -> Location:
    """The document index of a report location: ``connectors.jobs.ledger_root(report_uri)/_documents`` (written
    out here: that module brings pandas, which a look-up has no use for)."""
    return Location.parse(report_uri).normalised().child("_ledger", "_documents")


def _index(report_uri: str) -> tuple[ObjectStore, Location]:
    root = index_root(report_uri)
    return make_store(load_settings(), s3=root.is_s3), root


def document_history(report_uri: str, query: HistoryQuery, *, parquet_out: str | None = None) -> list[StateChange]:
    """The state changes ``query`` asks for; with ``parquet_out`` (a path or s3:// uri) also written there as
    Parquet. A customer is looked up in its one partition; the other questions read the whole index."""
    store, root = _index(report_uri)
    changes = history(_records(store, root, query), query)
    if parquet_out is not None:
        buf = io.BytesIO()
        pq.write_table(as_table(changes), buf, compression="zstd")
        store_out = make_store(load_settings(), s3=Location.parse(parquet_out).is_s3)
        store_out.write(Location.parse(parquet_out), buf.getvalue(), content_type="application/vnd.apache.parquet",
                        overwrite=True)
    return changes


def _records(store: ObjectStore, root: Location, query: HistoryQuery) -> Iterator[dict[str, Any]]:
    if query.customer is not None:
        yield from read_records(store, root, partition_of(query.customer), [query.customer.lower()])
        return
    for part in partitions(store, root):
        yield from read_records(store, root, part)


def compact_index(report_uri: str) -> list[Compacted]:
    """Compact every partition of the index that holds segments."""
    store, root = _index(report_uri)
    return compact(store, root)
