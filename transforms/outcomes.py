"""What each row of a shard ended as, and the shard's report part made from that.

Pure bookkeeping: which error means which outcome is decided in ``flows.row_failures`` (it knows the connectors'
error tree), and the time a row settled is the caller's to note (``on_settled``): nothing here reads a clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from transforms.codes import Reason, Status
from transforms.models import Document, RowOutcome
from transforms.report import REPORT_SCHEMA


@dataclass
class Outcomes:
    """The outcome of every row of one shard, by row number, filled in as its customers are worked."""

    rows: dict[int, RowOutcome] = field(default_factory=dict)
    # Parties found by email: the report gives their id, which is what a person needs to act on a row.
    party_of_row: dict[int, str] = field(default_factory=dict)
    # Told how many rows just got their outcome (the run counts rows settled per second for the report page's
    # chart of how the run went, with its own clock).
    on_settled: Callable[[int], None] | None = None

    def set(self, row_numbers: Iterable[int], status: Status, reason: Reason | None = None, message: str | None = None,
            *, uri: str | None = None, http_status: int | None = None, attempts: int = 0) -> None:
        """Give the rows one outcome."""
        before = len(self.rows)
        for n in row_numbers:
            self.rows[n] = RowOutcome(n, status, reason, message, uri, http_status, attempts)
        self._settled(len(self.rows) - before)

    def adopt(self, decided: list[RowOutcome], *, reported: Container[int]) -> None:
        """Take outcomes decided before any IO (the document rules' rejects); ``reported`` are the rows this shard
        reports (the plan's rejects ride along in the shard, and the plan's part reports and counts them)."""
        for o in decided:
            self.rows[o.row_number] = o
        self._settled(sum(1 for o in decided if o.row_number in reported))

    def attached(self, rows: Iterable[int], uri_of_row: dict[int, str], http_status: int | None,
                 attempts: int, message: str | None = None) -> None:
        """Mark the rows attached, each with the uri its file was uploaded as."""
        before = len(self.rows)
        for n in rows:
            self.rows[n] = RowOutcome(n, Status.attached, None, message, uri_of_row.get(n), http_status, attempts)
        self._settled(len(self.rows) - before)

    def _settled(self, count: int) -> None:
        if self.on_settled is not None:
            self.on_settled(count)

    def reject_rest_of(self, doc: Document, status: Status) -> None:
        """A document goes whole or not at all: its rows still without an outcome follow the file that was not
        accepted."""
        rest = [f.row_number for f in doc.files if f.row_number not in self.rows]
        self.set(rest, status, Reason.document_rejected, "another file of this document was not accepted")

    def pending(self, docs: Iterable[Document]) -> list[int]:
        """The documents' rows that have no outcome yet."""
        return [n for d in docs for n in d.row_numbers if n not in self.rows]

    def counts(self) -> dict[str, int]:
        """How many rows ended in each status."""
        return dict(Counter(o.status.value if isinstance(o.status, Status) else str(o.status)
                            for o in self.rows.values()))


def report_part(rows: pa.Table, outcomes: Outcomes) -> pa.Table:
    """The shard's rows in their order, each with its outcome, in the report's schema."""
    ordered = [outcomes.rows[n] for n in rows.column("row_number").to_pylist()]
    columns = {name: rows.column(name) for name in ("row_number", "customer_id", "document_type", "side", "s3_uri")}
    given = rows.column("associated_party_id").to_pylist()
    columns["associated_party_id"] = pa.array(
        [p or outcomes.party_of_row.get(o.row_number) for p, o in zip(given, ordered, strict=True)], pa.string())
    columns.update({
        "status": pa.array([str(o.status) for o in ordered], pa.string()),
        "reason_code": pa.array([None if o.reason_code is None else str(o.reason_code) for o in ordered], pa.string()),
        "message": pa.array([o.message for o in ordered], pa.string()),
        "uri": pa.array([o.uri for o in ordered], pa.string()),
        "http_status": pa.array([o.http_status for o in ordered], pa.int32()),
        "attempts": pa.array([o.attempts for o in ordered], pa.int32()),
    })
    return pa.table(columns).select(REPORT_SCHEMA.names).cast(REPORT_SCHEMA)
