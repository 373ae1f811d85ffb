"""Tiny table builders for the unit tests."""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa

from transforms.columns import CANONICAL_COLUMNS
from transforms.rules import Rules
from transforms.validate import validate_batch

TODAY = date(2026, 1, 10)
CUST = "6f1c2a3b-1111-4222-8333-444455556666"
CUST2 = "7f1c2a3b-1111-4222-8333-444455556666"
PARTY = "f6b13e01-044a-4f74-a70b-d5f66b6449af"
PARTY2 = "f71dc19f-b9a0-49fb-bd2d-5add3c01626e"


def passport(**kw: Any) -> dict[str, Any]:
    row = {
        "customer_id": CUST,
        "associated_party_id": PARTY,
        "document_type": "PASSPORT",
        "document_number": "A12345678",
        "country": "USA",
        "issue_date": "2020-01-15",
        "expiry_date": "2030-01-15",
        "s3_uri": "s3://kyc-docs/p/passport.pdf",
    }
    row.update(kw)
    return row


def national_id(side: str, **kw: Any) -> dict[str, Any]:
    base = {
        "document_type": "NATIONAL_ID",
        "document_number": "NID-987654",
        "side": side,
        "s3_uri": f"s3://kyc-docs/p/nid-{side.lower()}.pdf",
    }
    return passport(**(base | kw))


def bill(**kw: Any) -> dict[str, Any]:
    row = {
        "customer_id": CUST,
        "associated_party_id": PARTY,
        "document_type": "UTILITY_BILL",
        "s3_uri": "s3://kyc-docs/p/bill.pdf",
        "document_date": "2025-12-01",
    }
    row.update(kw)
    return row


def table(rows: list[dict[str, Any]]) -> pa.Table:
    cols = {c: [r.get(c) for r in rows] for c in CANONICAL_COLUMNS}
    return pa.table({c: pa.array(v, pa.string()) for c, v in cols.items()})


def rules(**kw: Any) -> Rules:
    return Rules(today=TODAY, **kw)


def validate(rows: list[dict[str, Any]], **kw: Any) -> pa.Table:
    return validate_batch(table(rows), rules=rules(**kw), first_row_number=1)


def reasons(rows: list[dict[str, Any]], **kw: Any) -> list[str | None]:
    return validate(rows, **kw).column("reason_code").to_pylist()
