"""Property tests: any rows, however malformed, end in exactly one outcome, and counts in equal counts out."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.helpers import CUST, CUST2, PARTY, PARTY2, TODAY
from transforms.codes import Reason
from transforms.columns import CANONICAL_COLUMNS
from transforms.grouping import group_documents
from transforms.rules import Rules
from transforms.validate import validate_batch

REASONS = {r.value for r in Reason}
SECRET_NUMBER = "SECRETNUM77"
SECRET_EMAIL = "secret.person@example.org"

# Plausible values mixed with arbitrary text and nulls, so the generator reaches valid documents and junk.
POOLS: dict[str, list[str]] = {
    "customer_id": [CUST, CUST2, CUST.upper(), "nope"],
    "associated_party_id": [PARTY, PARTY2, "1234"],
    "associated_party_email": [SECRET_EMAIL, "b@c.io", "n/a"],
    "document_type": [
        "PASSPORT",
        "NATIONAL_ID",
        "drivers_license",
        "UTILITY_BILL",
        "VISA",
        "RESIDENCE_PERMIT",
        "X",
    ],
    "document_number": [SECRET_NUMBER, "N2", SECRET_NUMBER + "x"],
    "country": ["USA", "GBR", "US", "usa", "ZZZ"],
    "issue_date": ["2020-01-15", "2021-02-30", "01/02/2021", "2027-01-01"],
    "expiry_date": ["2030-01-15", "2020-01-01", "2030-13-01"],
    "side": ["FRONT", "BACK", "front", "LEFT"],
    "s3_uri": [
        "s3://kyc-docs/a.pdf",
        "s3://kyc-docs/b.pdf",
        "s3://kyc-docs/c.pdf",
        "s3://x/../y",
        "http://z",
    ],
    "document_date": ["2025-12-01", "2020-01-01", "2026-12-01", "bad"],
    "document_id": ["d1", "d2"],
}


def cell(name: str) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(POOLS[name]), st.text(max_size=12))


TEMPLATES: list[dict[str, str | None]] = [
    {
        "customer_id": CUST,
        "associated_party_id": PARTY,
        "document_type": "PASSPORT",
        "document_number": "N2",
        "country": "USA",
        "issue_date": "2020-01-15",
        "expiry_date": "2030-01-15",
        "s3_uri": "s3://kyc-docs/a.pdf",
    },
    {
        "customer_id": CUST,
        "associated_party_id": PARTY,
        "document_type": "NATIONAL_ID",
        "side": "FRONT",
        "document_number": SECRET_NUMBER,
        "country": "USA",
        "issue_date": "2020-01-15",
        "expiry_date": "2030-01-15",
        "s3_uri": "s3://kyc-docs/b.pdf",
    },
    {
        "customer_id": CUST,
        "associated_party_id": PARTY,
        "document_type": "NATIONAL_ID",
        "side": "BACK",
        "document_number": SECRET_NUMBER,
        "country": "USA",
        "issue_date": "2020-01-15",
        "expiry_date": "2030-01-15",
        "s3_uri": "s3://kyc-docs/c.pdf",
    },
    {
        "customer_id": CUST2,
        "associated_party_email": SECRET_EMAIL,
        "document_type": "UTILITY_BILL",
        "s3_uri": "s3://kyc-docs/a.pdf",
        "document_date": "2025-12-01",
    },
]


@st.composite
def row_strategy(draw: st.DrawFn) -> dict[str, str | None]:
    """A valid template row with each column, now and then, replaced by a plausible or arbitrary value."""
    base = draw(st.sampled_from(TEMPLATES))
    row: dict[str, str | None] = {}
    for c in CANONICAL_COLUMNS:
        row[c] = draw(cell(c)) if draw(st.integers(0, 5)) == 0 else base.get(c)
    return row


rows_strategy = st.lists(row_strategy(), min_size=0, max_size=12)
RULES = Rules(today=TODAY, max_cell_chars=40)


def to_table(rows: list[dict]) -> pa.Table:
    return pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in CANONICAL_COLUMNS})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy, first=st.integers(min_value=1, max_value=10_000))
def test_validate_every_row_one_outcome(rows: list[dict], first: int) -> None:
    out = validate_batch(to_table(rows), rules=RULES, first_row_number=first)
    assert out.num_rows == len(rows)
    assert out.column("row_number").to_pylist() == list(range(first, first + len(rows)))
    for code, msg in zip(
        out.column("reason_code").to_pylist(), out.column("message").to_pylist(), strict=True
    ):
        assert (code is None) == (msg is None)
        if code is not None:
            assert code in REASONS
            assert SECRET_NUMBER not in msg and SECRET_EMAIL not in msg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy)
def test_grouping_accounts_for_every_valid_row(rows: list[dict]) -> None:
    validated = validate_batch(to_table(rows), rules=RULES, first_row_number=1)
    valid_rows = {
        rn
        for rn, code in zip(
            validated.column("row_number").to_pylist(),
            validated.column("reason_code").to_pylist(),
            strict=True,
        )
        if code is None
    }
    g = group_documents(validated, RULES)
    in_docs = [r for d in g.documents for r in d.row_numbers]
    rejected = [r.row_number for r in g.rejects]
    assert len(in_docs) + len(rejected) == len(valid_rows)
    assert set(in_docs) | set(rejected) == valid_rows
    assert not set(in_docs) & set(rejected)
    for r in g.rejects:
        assert r.reason_code in REASONS and r.message
        assert SECRET_NUMBER not in r.message and SECRET_EMAIL not in r.message
    for d in g.documents:
        if d.category == "identifying" and d.type in RULES.side_rules.two_sided_types:
            assert sorted(f.side for f in d.files) == ["BACK", "FRONT"]
        elif d.type in RULES.side_rules.front_and_back_allowed and len(d.files) == 2:
            assert sorted(f.side for f in d.files) == ["BACK", "FRONT"]  # a residence document may have both
        elif d.category == "identifying":
            assert len(d.files) == 1 and d.files[0].side in (None, "FRONT")  # the side of one image is optional
        assert len({f.s3_uri for f in d.files}) == len(d.files)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy)
def test_grouping_accepts_valid_rows_only_input(rows: list[dict]) -> None:
    validated = validate_batch(to_table(rows), rules=RULES, first_row_number=1)
    valid = validated.filter(validated.column("reason_code").is_null())
    g = group_documents(valid.to_pandas(), RULES)
    assert sum(len(d.files) for d in g.documents) + len(g.rejects) == valid.num_rows
