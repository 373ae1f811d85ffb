"""Which ledger records answer a history question, in what order, and the dry run's per-document preview."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pyarrow as pa
import pytest

from connectors.ledger_index import records_table
from transforms.codes import Reason
from transforms.dry_run_preview import already_attached_message, new_document_message, preview, unknown_message
from transforms.ledger_history import HistoryQuery, as_line, as_table, history, rows_to_read


def _doc(key: str, state: str, t: float | None, *, c: str = "c1", p: str = "p1", **extra: Any) -> dict[str, Any]:
    rec = {"k": "doc", "id": key, "c": c, "p": p, "s": state, "run": "run-1", "req": "req-1", **extra}
    if t is not None:
        rec["t"] = t
    return rec


RECORDS = [
    {"k": "upload", "c": "c1", "src": "s3://in/a.pdf", "etag": "e", "uri": "/a.pdf"},
    _doc("aaaa1111bbbb", "in_flight", 10.0, o=["s3://in/a.pdf"], at=9.5),
    _doc("cccc2222dddd", "in_flight", 11.0, p="p2"),  # written before records named their sources
    _doc("aaaa1111bbbb", "attached", 12.0, o=["s3://in/a.pdf"], at=9.5, http=200),
    _doc("eeee3333ffff", "attached", 5.0, c="c2", p="p9", o=["s3://in/z.pdf"]),
    _doc("cccc2222dddd", "failed", None, p="p2", http=422),
]


@pytest.mark.parametrize(("query", "expected"), [
    (HistoryQuery(customer="C1"), [("aaaa1111bbbb", "in_flight"), ("cccc2222dddd", "in_flight"),
                                   ("aaaa1111bbbb", "attached"), ("cccc2222dddd", "failed")]),
    (HistoryQuery(party="p2"), [("cccc2222dddd", "in_flight"), ("cccc2222dddd", "failed")]),
    (HistoryQuery(document="aaaa1111"), [("aaaa1111bbbb", "in_flight"), ("aaaa1111bbbb", "attached")]),
    (HistoryQuery(source="s3://in/z.pdf"), [("eeee3333ffff", "attached")]),
    (HistoryQuery(source="s3://in/nowhere.pdf"), []),
])
def test_history_answers_by_customer_party_document_or_source(query: HistoryQuery,
                                                              expected: list[tuple[str, str]]) -> None:
    assert [(c.document_key, c.state) for c in history(RECORDS, query)] == expected


def test_a_question_names_exactly_one_thing_and_a_key_prefix_is_long_enough() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        HistoryQuery(customer="c1", party="p1")
    with pytest.raises(ValueError, match="exactly one"):
        HistoryQuery()
    with pytest.raises(ValueError, match="document: give at least 8"):
        HistoryQuery(document="aaaa")


def test_a_line_and_the_extract_carry_run_request_status_and_sources() -> None:
    changes = history(RECORDS, HistoryQuery(document="aaaa1111bbbb"))

    line = as_line(changes[-1])
    table = as_table(changes)

    assert line.startswith("1970-01-01T00:00:12.000Z  attached")
    assert "run=run-1" in line and "request=req-1" in line and "http=200" in line
    assert table.column("source_objects").to_pylist() == [["s3://in/a.pdf"]] * 2
    assert table.column("http_status").to_pylist() == [None, 200]


def test_the_preview_counts_documents_not_rows() -> None:
    rows = [
        ("c1", Reason.dry_run, new_document_message([1, 2])),  # a two-sided card: one document
        ("c1", Reason.dry_run, new_document_message([1, 2])),
        ("c1", Reason.dry_run, new_document_message([3])),
        ("c1", Reason.already_attached, already_attached_message("r0", [4])),
        ("c2", Reason.already_attached, already_attached_message("r0", [4])),  # same rows text, other customer
        ("c2", Reason.outcome_unknown, unknown_message("r0", [5, 6])),
        ("c2", Reason.outcome_unknown, unknown_message("r0", [5, 6])),
        ("c2", Reason.missing_field, "document_type: missing"),
    ]
    table = pa.table({"customer_id": [r[0] for r in rows], "reason_code": [str(r[1]) for r in rows],
                      "message": [r[2] for r in rows]})

    got = preview(table)

    assert got["line"] == "would attach 2 new documents, skip 2 already attached, leave 1 unknown"


def test_the_history_command_does_not_import_prefect() -> None:
    code = ("import sys, flows.commands.ledger_commands, flows.commands.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == "[]"


@pytest.mark.parametrize("query", [
    HistoryQuery(customer="C1"), HistoryQuery(party="P2"), HistoryQuery(document="aaaa1111"),
    HistoryQuery(source="s3://in/a.pdf"), HistoryQuery(source="s3://in/z.pdf"), HistoryQuery(party="nobody"),
])
def test_the_rows_a_look_up_reads_give_the_same_history_as_every_record(query: HistoryQuery) -> None:
    table = records_table([{**r, "seg": "seg-1", "line": i} for i, r in enumerate(RECORDS)])

    kept = table.filter(rows_to_read(table, query))

    assert kept.num_rows < table.num_rows
    assert history(_compacted(kept), query) == history(RECORDS, query)


def _compacted(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of the compacted layout as records (without their empty fields)."""
    return [{k: v for k, v in row.items() if v is not None and k not in ("seg", "line", "x")}
            for row in table.to_pylist()]


@pytest.mark.parametrize("compacted", [False, True])
def test_a_customer_asked_for_in_capitals_or_with_spaces_around_finds_its_canonical_records(
        tmp_path: Any, compacted: bool) -> None:
    import asyncio

    from connectors.ledger import Ledger, Send
    from connectors.ledger_index import compact
    from connectors.objects import ObjectStore
    from connectors.s3 import Location
    from flows.commands.ledger_commands import _records

    store, root = ObjectStore(None), Location(None, str(tmp_path / "_documents"))
    customer = "6f1c2a3b-1111-4222-8333-444455556666"  # as validation leaves it: trimmed, lower-case

    async def fill() -> None:
        ledger = Ledger(store, root, linger_s=0)
        await ledger.sending(customer, {"ab" * 32: "f6b13e01-044a-4f74-a70b-d5f66b6449af"}, Send(
            "r", "cd" * 8, 1.76e9))
        await ledger.flush()

    asyncio.run(fill())
    if compacted:
        compact(store, root)

    # pasted from a spreadsheet cell: the history a person asks for is the customer's
    query = HistoryQuery(customer=f" {customer.upper()} ")
    assert [c.state for c in history(_records(store, root, query), query)] == ["in_flight"]
