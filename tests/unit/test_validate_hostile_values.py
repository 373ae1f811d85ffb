"""Hostile values (issue 16): hidden characters, absurd dates, look-alike allow-list prefixes, masked cells."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.helpers import bill, passport, rules, table, validate
from transforms.columns import CANONICAL_COLUMNS, REPORTED_VALUE_COLUMNS, same_name_columns
from transforms.report import MASK, mask_broken_cells
from transforms.validate import (
    _BAD_CHARS_RE,
    _bad_characters,
    validate_batch,
)

# One of each kind the rule must catch: C0, DEL, C1 (NEL), bidi marks, embeddings/overrides, isolates,
# the Arabic letter mark, zero-width characters, the word joiner and the BOM.
HIDDEN = ["\x00", "\x1b", "\x7f", "\x85", "\x9f", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069",
          "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
# Characters that look unusual but are fine inside a value.
HARMLESS = ["é", "€", "–", "\u00a0", "日", "\u2010", "\u2070", "\ufefe"]


def _with_hidden(field: str, ch: str) -> dict[str, str | None]:
    row = passport(document_date="2025-12-01", associated_party_email="a.person@example.com")
    value = row.get(field) or "xyz"
    row[field] = value[:2] + ch + value[2:]  # inside the value: a trim cannot remove it
    return row


@pytest.mark.parametrize("field", CANONICAL_COLUMNS)
@pytest.mark.parametrize("ch", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_hidden_character_in_any_field_is_bad_characters(field: str, ch: str) -> None:
    out = validate([_with_hidden(field, ch)])
    assert out.column("reason_code").to_pylist() == ["bad_characters"]
    message = out.column("message").to_pylist()[0]
    assert message.startswith(f"{field}: ")
    assert ch not in message


@pytest.mark.parametrize("ch", HARMLESS)
def test_harmless_non_ascii_is_not_bad_characters(ch: str) -> None:
    assert validate([passport(document_id="AB" + ch + "123")]).column("reason_code").to_pylist() == [None]


def test_hidden_character_among_many_clean_rows_hits_only_its_row() -> None:
    rows = [passport(document_number=f"A{i:08d}", s3_uri=f"s3://kyc-docs/p/{i}.pdf") for i in range(500)]
    rows[321]["document_number"] = "A1\u202e23"
    rows[7]["associated_party_email"] = "é@example.com"  # non-ASCII bytes elsewhere in the batch
    got = validate(rows).column("reason_code").to_pylist()
    assert [i for i, r in enumerate(got) if r] == [321] and got[321] == "bad_characters"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.sampled_from(["a", "1", " ", *HIDDEN, *HARMLESS]),
                                             max_size=6)), max_size=30), st.integers(0, 3))
def test_bad_characters_fast_path_is_the_full_regex(vals: list[str | None], cut: int) -> None:
    col = pa.array(["pad\x00"] * cut + vals, pa.string()).slice(cut)
    expected = pc.fill_null(pc.match_substring_regex(col, _BAD_CHARS_RE), False).to_pylist()
    got = _bad_characters(col)
    assert (got.to_pylist() if got is not None else [False] * len(col)) == expected


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("issue_date", "0000-01-01", False),
    ("issue_date", "1899-12-31", False),
    ("issue_date", "1900-01-01", True),
    ("expiry_date", "2199-12-31", True),
    ("expiry_date", "2200-01-01", False),
    ("expiry_date", "9999-12-31", False),
])
def test_dates_outside_1900_to_2199_are_bad_date(field: str, value: str, ok: bool) -> None:
    out = validate([passport(**{field: value})])
    if ok:
        assert out.column("reason_code").to_pylist() == [None]
        return
    assert out.column("reason_code").to_pylist() == ["bad_date"]
    assert out.column("message").to_pylist() == [f"{field}: outside 1900-01-01 to 2199-12-31"]


def test_document_date_outside_range_is_bad_date() -> None:
    out = validate([bill(document_date="1066-10-14")])
    assert out.column("message").to_pylist() == ["document_date: outside 1900-01-01 to 2199-12-31"]


@pytest.mark.parametrize(("allowed", "uri", "ok"), [
    ("kyc-docs/p", "s3://kyc-docs/p/a.pdf", True),
    ("kyc-docs/p/", "s3://kyc-docs/p/a.pdf", True),
    ("kyc-docs/p", "s3://kyc-docs/p-private/a.pdf", False),
    ("kyc-docs/p", "s3://kyc-docs/pa.pdf", False),
    ("kyc-docs", "s3://kyc-docs/p-private/a.pdf", True),
    ("kyc-docs", "s3://kyc-docs-evil/p/a.pdf", False),
    (" kyc-docs/p/q ", "s3://kyc-docs/p/q/r/a.pdf", True),
    ("kyc-docs/p/q", "s3://kyc-docs/p/qq/a.pdf", False),
])
def test_allow_list_matches_whole_path_segments(allowed: str, uri: str, ok: bool) -> None:
    got = validate([passport(s3_uri=uri)], allowed_buckets=(allowed,)).column("reason_code").to_pylist()
    assert got == [None if ok else "bucket_not_allowed"]


def test_bad_fields_flag_every_reported_cell_that_broke_a_rule() -> None:
    rows = [
        passport(associated_party_id="someone@example.com"),  # an email typed as the party id
        passport(document_type="PXN0000123"),  # a document number typed as the type
        passport(side="A1234567"),
        passport(s3_uri="https://x/passport.pdf"),
        passport(customer_id="C-0001\u202e"),
        passport(expiry_date="2020-01-01"),  # rejected, but no reported cell is wrong
        passport(),
    ]
    out = validate_batch(table(rows), rules=rules(), first_row_number=1, bad_fields=True)
    bits = out.column("bad_fields").to_pylist()
    named = [{REPORTED_VALUE_COLUMNS[i] for i in range(len(REPORTED_VALUE_COLUMNS)) if b >> i & 1} for b in bits]
    assert named == [{"associated_party_id"}, {"document_type"}, {"side"}, {"s3_uri"}, {"customer_id"}, set(), set()]


def test_mask_broken_cells_masks_only_flagged_non_empty_cells() -> None:
    rows = pa.table({c: pa.array(["v0", None, "v2"], pa.string()) for c in REPORTED_VALUE_COLUMNS})
    bits = np.array([0b00010, 0b00010, 0b10101], dtype=np.uint8)
    out = mask_broken_cells(rows, bits).to_pydict()
    assert out["associated_party_id"] == [MASK, None, "v2"]
    assert out["customer_id"] == ["v0", None, MASK]
    assert out["document_type"] == ["v0", None, MASK]
    assert out["side"] == ["v0", None, "v2"]
    assert out["s3_uri"] == ["v0", None, MASK]


def test_same_name_columns_are_named_once_case_and_spaces_are_ignored() -> None:
    assert same_name_columns(["customer_id", "Customer_ID ", "s3_uri"]) == [
        "duplicate column 'customer_id' (2 columns read as it once case and spaces are ignored)"]
    assert same_name_columns(["customer_id", "s3_uri", "x", "x"]) == []  # exact copies: check_columns' job
