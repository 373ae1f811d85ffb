"""What a dry run says a real run would do, per document (pure).

Every row of one document gets one message naming the document's rows, so the preview counts documents, not
rows: a two-sided identity card is one document to attach, not two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from transforms.codes import Reason


def _rows(row_numbers: Sequence[int]) -> str:
    numbers = sorted(row_numbers)
    return f"row {numbers[0]}" if len(numbers) == 1 else "rows " + ", ".join(map(str, numbers))


def new_document_message(row_numbers: Sequence[int]) -> str:
    """A document no earlier run attached: a real run sends it."""
    return f"dry run: checked, not sent; a real run attaches it ({_rows(row_numbers)})"


def already_attached_message(run_id: str, row_numbers: Sequence[int]) -> str:
    """A document the ledger says an earlier run attached: a real run skips it."""
    return f"dry run: attached by run {run_id}; a real run skips it ({_rows(row_numbers)})"


def unknown_message(run_id: str, row_numbers: Sequence[int]) -> str:
    """A document an earlier run sent without learning the outcome: a real run reports it unknown unless the
    parties' statuses settle it."""
    return (f"dry run: run {run_id} sent it and its outcome is not known; a real run leaves it unknown unless "
            f"the parties' statuses settle it ({_rows(row_numbers)})")


_PREVIEW = {"attach": Reason.dry_run, "skip_already_attached": Reason.already_attached,
            "leave_unknown": Reason.outcome_unknown}


def preview(table: pa.Table) -> dict[str, Any]:
    """Documents a real run would attach, skip as already attached and leave unknown, from a dry run's report
    (rows of one document share their message), and the sentence that says so."""
    counts: dict[str, Any] = {}
    for name, reason in _PREVIEW.items():
        mine = table.filter(pc.equal(table.column("reason_code"), str(reason)))
        counts[name] = len(set(zip(mine.column("customer_id").to_pylist(), mine.column("message").to_pylist(),
                                   strict=True)))
    counts["line"] = (f"would attach {counts['attach']} new documents, skip {counts['skip_already_attached']} "
                      f"already attached, leave {counts['leave_unknown']} unknown")
    return counts
