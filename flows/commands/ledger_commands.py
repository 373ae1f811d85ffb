"""``kyc-attach history``, ``kyc-attach ledger compact`` and ``kyc-attach ledger adopt``: read, fold and fill the
tenant ledger's document index (wiring only: ``connectors.ledger_index``, ``connectors.ledger_adoption``).

Neither imports Prefect: a look-up starts in a second, not in the time Prefect takes to import.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq

from connectors.ledger_adoption import adopt
from connectors.ledger_index import Compacted, compact, partitions, read_records
from connectors.objects import ObjectStore
from connectors.s3 import Location
from connectors.tenant_ledger import check_stamp, ledger_location
from flows.settings import load_settings
from flows.stores import make_store
from transforms.exactly_once import partition_of
from transforms.ledger_history import HistoryQuery, StateChange, as_table, history, rows_to_read
from transforms.tenant import TenantStamp


def _index(ledger_uri: str | None) -> tuple[ObjectStore, Location]:
    """The store and the document index of the ledger ``ledger_uri`` names, else of the tenant ledger the settings
    name (``KYC_ATTACH_LEDGER_URI``)."""
    settings = load_settings()
    root = ledger_location(ledger_uri or settings.ledger_uri, settings.work_dir).child("_documents")
    return make_store(settings, s3=root.is_s3, roles=()), root


def document_history(ledger_uri: str | None, query: HistoryQuery, *,
                     parquet_out: str | None = None) -> list[StateChange]:
    """The state changes ``query`` asks for; with ``parquet_out`` (a path or s3:// uri) also written there as
    Parquet. A customer is looked up in its one partition; the other questions read the whole index, turning only
    the records of the documents they match into Python objects."""
    store, root = _index(ledger_uri)
    changes = history(_records(store, root, query), query)
    if parquet_out is not None:
        buf = io.BytesIO()
        pq.write_table(as_table(changes), buf, compression="zstd")
        store_out = make_store(load_settings(), s3=Location.parse(parquet_out).is_s3, roles=())
        store_out.write(Location.parse(parquet_out), buf.getvalue(), content_type="application/vnd.apache.parquet",
                        overwrite=True)
    return changes


def _records(store: ObjectStore, root: Location, query: HistoryQuery) -> Iterator[dict[str, Any]]:
    if query.customer is not None:
        yield from read_records(store, root, partition_of(query.customer), [query.customer.lower()])
        return
    for part in partitions(store, root):
        yield from read_records(store, root, part, keep=lambda table: rows_to_read(table, query))


def compact_index(ledger_uri: str | None) -> list[Compacted]:
    """Compact every partition of the index that holds segments (rows grouped by the planner's hash slots)."""
    store, root = _index(ledger_uri)
    return compact(store, root, slots=load_settings().max_shards)


def adopt_command(report_prefix: str) -> dict[str, Any]:
    """Copy ``REPORT_PREFIX/_ledger`` into the tenant ledger (``KYC_ATTACH_LEDGER_URI``) and mark it adopted;
    what was copied. A ledger stamped for another tenant than the settings name is refused (``SetupError``)."""
    settings = load_settings()
    ledger = ledger_location(settings.ledger_uri, settings.work_dir)
    report_root = Location.parse(report_prefix)
    store = make_store(settings, s3=report_root.is_s3 or ledger.is_s3, roles=())
    if settings.client_id:  # without credentials set there is no tenant to compare with
        check_stamp(store, ledger, TenantStamp.of(settings.api_url, settings.client_id), create=False)
    adoption = adopt(store, report_root, ledger)
    return {"ledger": str(ledger), "copied": adoption.copied, "already_in_ledger": adoption.present,
            "marker": str(adoption.marker)}
