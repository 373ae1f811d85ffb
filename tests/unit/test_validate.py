from __future__ import annotations

import pyarrow as pa
import pytest

from tests.unit.helpers import CUST, bill, national_id, passport, reasons, rules, table, validate
from transforms.codes import Reason
from transforms.columns import CANONICAL_COLUMNS, normalise_column_names
from transforms.validate import (
    RULE_ORDER,
    check_columns,
    validate_batch,
)


def one(row: dict, **kw) -> str | None:
    return reasons([row], **kw)[0]


def test_valid_rows_pass_and_are_normalised() -> None:
    out = validate(
        [
            passport(document_type=" passport ", country="usa", customer_id=CUST.upper()),
            national_id(" front"),
            bill(associated_party_id=None, associated_party_email="  Jane@Example.COM "),
        ]
    )
    assert out.column("reason_code").to_pylist() == [None, None, None]
    assert out.column("document_type").to_pylist()[0] == "PASSPORT"
    assert out.column("country").to_pylist()[0] == "USA"
    assert out.column("customer_id").to_pylist()[0] == CUST
    assert out.column("side").to_pylist()[1] == "FRONT"
    assert out.column("associated_party_email").to_pylist()[2] == "jane@example.com"
    assert out.column("category").to_pylist() == ["identifying", "identifying", "address"]
    assert out.column("row_number").to_pylist() == [1, 2, 3]


def test_row_numbers_start_at_first_row_number() -> None:
    out = validate_batch(table([passport(), passport()]), rules=rules(), first_row_number=101)
    assert out.column("row_number").to_pylist() == [101, 102]
    assert out.schema.field("row_number").type == pa.int64()


@pytest.mark.parametrize(
    ("row", "code", "field"),
    [
        (passport(document_number="x" * 5000), "cell_too_long", "document_number"),
        (passport(customer_id=None), "missing_field", "customer_id"),
        (passport(customer_id="   "), "missing_field", "customer_id"),
        (passport(document_type=""), "missing_field", "document_type"),
        (passport(s3_uri=None), "missing_field", "s3_uri"),
        (passport(associated_party_id=None), "missing_field", "associated_party_id"),
        (passport(document_number=None), "missing_field", "document_number"),
        (passport(country=None), "missing_field", "country"),
        (passport(issue_date=None), "missing_field", "issue_date"),
        (passport(expiry_date=None), "missing_field", "expiry_date"),
        (passport(customer_id="not-a-uuid"), "bad_uuid", "customer_id"),
        (passport(associated_party_id="1234"), "bad_uuid", "associated_party_id"),
        (
            passport(associated_party_id=None, associated_party_email="n/a"),
            "bad_email",
            "associated_party_email",
        ),
        (passport(document_type="SELFIE"), "unknown_type", "document_type"),
        (passport(country="US"), "bad_country", "country"),
        (passport(country="XYZ"), "bad_country", "country"),
        (passport(issue_date="2021-02-30"), "bad_date", "issue_date"),
        (passport(issue_date="01/02/2021"), "bad_date", "issue_date"),
        (passport(expiry_date="2031-1-5"), "bad_date", "expiry_date"),
        (passport(expiry_date="2031-13-01"), "bad_date", "expiry_date"),
        (bill(document_date="2025-11-31"), "bad_date", "document_date"),
        (passport(issue_date="2031-01-01", expiry_date="2030-01-01"), "issue_after_expiry", "issue_date"),
        (passport(expiry_date="2026-01-09"), "expired", "expiry_date"),
        (passport(issue_date="2026-01-11"), "future_date", "issue_date"),
        (bill(document_date="2026-01-11"), "future_date", "document_date"),
        (bill(document_date="2025-10-11"), "stale_address_document", "document_date"),
        (passport(side="LEFT"), "bad_side", "side"),
        (passport(side="BACK"), "side_not_allowed", "side"),
        (bill(side="FRONT"), "side_not_allowed", "side"),
        (national_id("FRONT") | {"side": None}, "missing_side", "side"),
        (passport(s3_uri="https://x/y.pdf"), "bad_s3_uri", "s3_uri"),
        (passport(s3_uri="s3://kyc-docs/"), "bad_s3_uri", "s3_uri"),
        (passport(s3_uri="s3://kyc-docs/a/../b.pdf"), "bad_s3_uri", "s3_uri"),
        (passport(s3_uri="s3://kyc-docs/a/b\x07.pdf"), "bad_characters", "s3_uri"),
        (passport(s3_uri="s3://Bad_Bucket/b.pdf"), "bad_s3_uri", "s3_uri"),
        (passport(s3_uri="s3://kyc-docs/dir/"), "bad_s3_uri", "s3_uri"),
        (passport(s3_uri="s3://10.0.0.1/b.pdf"), "bad_s3_uri", "s3_uri"),
    ],
)
def test_each_rule(row: dict, code: str, field: str) -> None:
    out = validate([row])
    assert out.column("reason_code").to_pylist() == [code]
    msg = out.column("message").to_pylist()[0]
    assert msg.startswith(field)


def test_boundaries_accepted() -> None:
    assert one(passport(expiry_date="2026-01-10")) is None  # expires today: still valid
    assert one(passport(issue_date="2026-01-10")) is None
    assert one(bill(document_date="2025-10-12")) is None  # exactly 90 days old
    assert one(bill(document_date=None)) is None  # no date: accepted
    assert one(passport(issue_date="2024-02-29")) is None  # leap day
    assert one(bill(country="US", issue_date="junk")) is None  # fields a category does not use are ignored


def test_residence_permit_sides_configurable() -> None:
    from transforms.catalogue import SideRules

    rp = passport(document_type="RESIDENCE_PERMIT")
    assert one(rp) is None
    assert one(rp, side_rules=SideRules(residence_permit_needs_both_sides=True)) == "missing_side"
    assert one(passport(document_type="PERMANENT_RESIDENCY_ID")) is None


def test_permanent_residency_id_follows_the_residence_permit_s_two_sides_setting() -> None:
    from transforms.catalogue import SideRules

    prid = passport(document_type="PERMANENT_RESIDENCY_ID")
    assert one(prid, side_rules=SideRules(residence_permit_needs_both_sides=True)) == "missing_side"
    assert one(prid, side_rules=SideRules(residence_permit_needs_both_sides=True,
                                          permanent_residency_id_needs_both_sides=False)) is None


def test_allowed_buckets_and_prefixes() -> None:
    assert one(passport(), allowed_buckets=("kyc-docs",)) is None
    assert one(passport(), allowed_buckets=("kyc",)) == "bucket_not_allowed"
    assert one(passport(), allowed_buckets=("kyc-docs/p/",)) is None
    assert one(passport(), allowed_buckets=("kyc-docs/q/",)) == "bucket_not_allowed"


def test_first_rule_in_order_wins() -> None:
    # bad uuid, unknown type and bad date at once: bad_uuid comes first in RULE_ORDER.
    assert one(passport(customer_id="x", document_type="FOO", issue_date="x")) == "bad_uuid"
    assert one(passport(country="US", issue_date="bad")) == "bad_country"


def test_missing_optional_columns_added_and_types_cast() -> None:
    t = pa.table(
        {
            "customer_id": [CUST],
            "associated_party_email": ["a@b.co"],
            "document_type": ["VISA"],
            "s3_uri": ["s3://kyc-docs/v.pdf"],
            "issue_date": pa.array([None], pa.date32()),
            "extra": [1],
        }
    )
    out = validate_batch(t, rules=rules(), first_row_number=1)
    assert out.column_names[: len(CANONICAL_COLUMNS)] == list(CANONICAL_COLUMNS)
    assert "extra" not in out.column_names
    assert out.column("reason_code").to_pylist() == [None]
    kept = validate_batch(t, rules=rules(), first_row_number=1, keep_extra=True)
    assert kept.column("extra").to_pylist() == [1]


def test_non_string_and_invalid_utf8_columns_never_raise() -> None:
    t = pa.table(
        {
            "customer_id": pa.array([b"\xff\xfe", None], pa.binary()),
            "associated_party_id": pa.array([1, 2], pa.int64()),
            "document_type": pa.array([["x"], None], pa.list_(pa.string())),
            "s3_uri": pa.array([1.5, None]),
        }
    )
    out = validate_batch(t, rules=rules(), first_row_number=1)
    assert out.num_rows == 2
    assert all(r is not None for r in out.column("reason_code").to_pylist())


def test_empty_table() -> None:
    out = validate_batch(table([]), rules=rules(), first_row_number=1)
    assert out.num_rows == 0


def test_check_columns() -> None:
    assert check_columns(["customer_id", "associated_party_email", "document_type", "s3_uri", "zzz"]) == []
    problems = check_columns(["document_type", "s3_uri"])
    assert "missing required column 'customer_id'" in problems
    assert any("associated_party_id" in p for p in problems)
    assert normalise_column_names(["\ufeffCustomer_ID ", "S3_URI"]) == ["customer_id", "s3_uri"]


def test_messages_never_contain_values() -> None:
    secret_number, secret_email = "ZX9988776", "secret.person@example.com"
    rows = [
        passport(document_number=secret_number, expiry_date="2020-01-01"),
        passport(document_number=secret_number * 1000),
        passport(associated_party_id=None, associated_party_email=secret_email, country="ZZZ"),
        passport(associated_party_id=None, associated_party_email=secret_email + "@@"),
    ]
    msgs = validate(rows).column("message").to_pylist()
    assert all(m for m in msgs)
    for m in msgs:
        assert secret_number not in m and secret_email not in m and "ZZZ" not in m


@pytest.mark.parametrize("side", [None, "FRONT"])
def test_a_passport_side_is_optional_as_the_documented_examples_send_it(side: str | None) -> None:
    out = validate([passport(side=side)])
    assert out.column("reason_code").to_pylist() == [None]


@pytest.mark.parametrize(("country", "code"), [("USA", None), ("CAN", "permanent_residency_not_usa")])
def test_permanent_residency_id_is_for_us_residents_only(country: str, code: str | None) -> None:
    out = validate([passport(document_type="PERMANENT_RESIDENCY_ID", country=country)])
    assert out.column("reason_code").to_pylist() == [code]


# One way to break each rule of RULE_ORDER, in its order (the two missing_field entries: a required column, then an
# identifying document's field). Every rule is broken through the columns named here only.
_BREAKERS: list[tuple[Reason, dict[str, str | None]]] = [
    (Reason.cell_too_long, {"document_number": "x" * 5000}),
    (Reason.bad_characters, {"associated_party_email": "a\u200bb@example.com"}),
    (Reason.missing_field, {"customer_id": None}),
    (Reason.bad_uuid, {"associated_party_id": "1234"}),
    (Reason.bad_email, {"associated_party_id": None, "associated_party_email": "n/a"}),
    (Reason.unknown_type, {"document_type": "SELFIE"}),
    (Reason.missing_field, {"expiry_date": None}),
    (Reason.bad_side, {"side": "LEFT"}),
    (Reason.missing_side, {"document_type": "NATIONAL_ID", "side": None}),
    (Reason.side_not_allowed, {"side": "BACK"}),
    (Reason.bad_s3_uri, {"s3_uri": "https://x/y.pdf"}),
    (Reason.bucket_not_allowed, {"s3_uri": "s3://elsewhere/p/passport.pdf"}),
    (Reason.bad_country, {"country": "US"}),
    (Reason.permanent_residency_not_usa, {"document_type": "PERMANENT_RESIDENCY_ID", "country": "CAN"}),
    (Reason.bad_date, {"issue_date": "2021-02-30"}),
    (Reason.issue_after_expiry, {"issue_date": "2031-01-01", "expiry_date": "2030-01-01"}),
    (Reason.expired, {"expiry_date": "2026-01-09"}),
    (Reason.future_date, {"issue_date": "2026-01-11"}),
    (Reason.stale_address_document, {"document_type": "UTILITY_BILL", "document_date": "2025-10-11"}),
]
_ALLOWED = ("kyc-docs",)


def test_rule_order_lists_each_rule_the_validation_applies() -> None:
    assert [reason for reason, _ in _BREAKERS] == list(RULE_ORDER)
    for reason, change in _BREAKERS:
        assert one(passport(**change), allowed_buckets=_ALLOWED) == reason, change


# Where two breakages interact, what the row reports instead of the earlier rule: an issue date after the run date and
# an expiry before it are issue_after_expiry; a BACK side is allowed on a PERMANENT_RESIDENCY_ID.
_INTERACTIONS = {
    (Reason.expired, Reason.future_date): Reason.issue_after_expiry,
    (Reason.side_not_allowed, Reason.permanent_residency_not_usa): Reason.permanent_residency_not_usa,
}
# Rules for identifying documents only: a row made an address document no longer breaks them.
_IDENTIFYING_ONLY = {Reason.bad_country, Reason.bad_date, Reason.issue_after_expiry, Reason.expired,
                     Reason.future_date}


def _expected(early: int, late: int) -> Reason:
    early_reason, early_change = _BREAKERS[early]
    late_reason = _BREAKERS[late][0]
    if late_reason is Reason.stale_address_document and (
            early_reason in _IDENTIFYING_ONLY or "expiry_date" in early_change):
        return late_reason
    return _INTERACTIONS.get((early_reason, late_reason), early_reason)


@pytest.mark.parametrize("later", range(1, len(_BREAKERS)))
def test_rule_order_is_the_order_the_validation_applies(later: int) -> None:
    """A row that breaks two rules (through different columns) reports the one RULE_ORDER names first."""
    late_change = _BREAKERS[later][1]
    combined = 0
    for early, (_, early_change) in enumerate(_BREAKERS[:later]):
        if early_change.keys() & late_change.keys():
            continue  # two breakages of one column cannot be combined
        row = passport(**(early_change | late_change))
        assert one(row, allowed_buckets=_ALLOWED) == _expected(early, later), (early, later)
        combined += 1
    assert combined > 0
