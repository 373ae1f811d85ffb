"""A document's history from the ledger's records (pure): which records answer a question, and how they read.

The ledger holds no document number and no email (a document is known by its key, a hash), so nothing here
can print one. A question names one thing: a customer, a party, a document key (or its first characters) or
a source object (the s3 uri of one of the document's files); the answer is every state change of every
document it matches, oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# A shorter key prefix would match documents nobody meant.
MIN_KEY_PREFIX = 8


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """What the history is asked about; exactly one field is set."""

    customer: str | None = None
    party: str | None = None
    document: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for name in ("customer", "party", "document"):  # ids as a person pastes them: spaces around go
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, value.strip())
        given = [n for n in ("customer", "party", "document", "source") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("history: name exactly one of --customer, --party, --document, --source")
        if self.document is not None and len(self.document) < MIN_KEY_PREFIX:
            raise ValueError(f"document: give at least {MIN_KEY_PREFIX} characters of the document key")


@dataclass(frozen=True, slots=True)
class StateChange:
    """One record of a document's state."""

    at: datetime | None  # when the state was recorded (older records: when its request was sent)
    customer_id: str
    party_id: str
    document_key: str
    state: str
    run_id: str
    request_id: str | None
    http_status: int | None
    sent_at: datetime | None
    sources: tuple[str, ...]


def history(records: Iterable[dict[str, Any]], query: HistoryQuery) -> list[StateChange]:
    """The state changes of the documents ``query`` matches, oldest first (records without a time keep their
    place after the timed ones of their document)."""
    docs = [r for r in records if r.get("k") == "doc"]
    keys = {r["id"] for r in docs if _matches(r, query)}
    sources: dict[str, tuple[str, ...]] = {}
    for r in docs:
        if r["id"] in keys and r.get("o"):
            sources[r["id"]] = tuple(r["o"])
    changes = [_change(r, sources.get(r["id"], ())) for r in docs if r["id"] in keys]
    order = {id(c): i for i, c in enumerate(changes)}
    return sorted(changes, key=lambda c: (c.at is None, c.at or datetime.min.replace(tzinfo=UTC), order[id(c)]))


def rows_to_read(table: pa.Table, query: HistoryQuery) -> pa.Array:
    """Which rows of a table of records (the compacted index's columns) :func:`history` needs for ``query``: every
    record of each document one of whose records matches (the rule of :func:`history`, vectorised, so a look-up
    over the whole index turns only the answer's records into Python objects)."""
    docs = pc.equal(table.column("k"), "doc")
    if query.customer is not None:
        hit = pc.equal(pc.utf8_lower(table.column("c")), query.customer.lower())
    elif query.party is not None:
        hit = pc.equal(pc.utf8_lower(table.column("p")), query.party.lower())
    elif query.document is not None:
        hit = pc.starts_with(table.column("id"), query.document.lower())
    else:
        sources = table.column("o").combine_chunks()
        named = pc.list_parent_indices(sources).filter(pc.equal(pc.list_flatten(sources), query.source))
        mask = np.zeros(len(table), dtype=bool)
        mask[named.to_numpy()] = True
        hit = pa.array(mask)
    keys = pc.unique(table.column("id").filter(pc.and_(docs, pc.fill_null(hit, False))))
    return pc.and_(docs, pc.fill_null(pc.is_in(table.column("id"), keys), False))


def _matches(rec: dict[str, Any], q: HistoryQuery) -> bool:
    if q.customer is not None:
        return str(rec.get("c", "")).lower() == q.customer.lower()
    if q.party is not None:
        return str(rec.get("p", "")).lower() == q.party.lower()
    if q.document is not None:
        return str(rec["id"]).startswith(q.document.lower())
    return q.source in (rec.get("o") or ())


def _change(rec: dict[str, Any], sources: tuple[str, ...]) -> StateChange:
    when = rec.get("t", rec.get("at"))
    return StateChange(
        at=_time(when), customer_id=rec["c"], party_id=rec.get("p", ""), document_key=rec["id"], state=rec["s"],
        run_id=rec.get("run", ""), request_id=rec.get("req"), http_status=rec.get("http"),
        sent_at=_time(rec.get("at")), sources=sources,
    )


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def as_line(change: StateChange) -> str:
    """One state change as a line for a person (no personal data: the ledger holds none)."""
    when = change.at.isoformat(timespec="milliseconds").replace("+00:00", "Z") if change.at else "-"
    http = str(change.http_status) if change.http_status is not None else "-"
    return (f"{when}  {change.state:<9}  customer={change.customer_id}  party={change.party_id}  "
            f"document={change.document_key[:16]}  run={change.run_id}  request={change.request_id or '-'}  "
            f"http={http}")


HISTORY_SCHEMA = pa.schema([
    ("recorded_at", pa.timestamp("ms", tz="UTC")),
    ("customer_id", pa.string()),
    ("party_id", pa.string()),
    ("document_key", pa.string()),
    ("state", pa.string()),
    ("run_id", pa.string()),
    ("request_id", pa.string()),
    ("http_status", pa.int16()),
    ("sent_at", pa.timestamp("ms", tz="UTC")),
    ("source_objects", pa.list_(pa.string())),
])


def as_table(changes: list[StateChange]) -> pa.Table:
    """The state changes as a table for a warehouse (``HISTORY_SCHEMA``)."""
    return pa.Table.from_pylist([{
        "recorded_at": c.at, "customer_id": c.customer_id, "party_id": c.party_id, "document_key": c.document_key,
        "state": c.state, "run_id": c.run_id, "request_id": c.request_id, "http_status": c.http_status,
        "sent_at": c.sent_at, "source_objects": list(c.sources),
    } for c in changes], schema=HISTORY_SCHEMA)
