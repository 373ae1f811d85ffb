from __future__ import annotations

from typing import Any

from tests.unit.helpers import CUST, CUST2, PARTY2, bill, national_id, passport, validate
from tests.unit.helpers import rules as make_rules
from transforms.grouping import Grouped, group_documents


def group(rows: list[dict[str, Any]]) -> Grouped:
    return group_documents(validate(rows), make_rules())


def rejects(g: Grouped) -> dict[int, str | None]:
    return {r.row_number: r.reason_code for r in g.rejects}


def test_valid_documents_grouped() -> None:
    g = group(
        [passport(), national_id("BACK"), national_id("FRONT"), bill(), bill(s3_uri="s3://kyc-docs/b2.pdf")]
    )
    assert g.rejects == []
    by_type = {d.type: d for d in g.documents}
    assert set(by_type) == {"PASSPORT", "NATIONAL_ID", "UTILITY_BILL"}
    nid = by_type["NATIONAL_ID"]
    assert [f.side for f in nid.files] == ["FRONT", "BACK"]  # FRONT first whatever the row order
    assert nid.row_numbers == (3, 2)
    assert len(by_type["UTILITY_BILL"].files) == 2  # address docs: several files allowed
    assert by_type["PASSPORT"].category == "identifying"


def test_national_id_only_front() -> None:
    g = group([national_id("FRONT")])
    assert g.documents == [] and rejects(g) == {1: "missing_side"}


def test_two_fronts() -> None:
    g = group(
        [national_id("FRONT"), national_id("FRONT", s3_uri="s3://kyc-docs/f2.pdf"), national_id("BACK")]
    )
    assert rejects(g) == {1: "duplicate_side", 2: "duplicate_side", 3: "document_rejected"}


def test_passport_two_files() -> None:
    g = group([passport(), passport(s3_uri="s3://kyc-docs/p2.pdf")])
    assert rejects(g) == {1: "too_many_files", 2: "too_many_files"}


def test_conflicting_number_between_sides_with_document_id() -> None:
    g = group(
        [national_id("FRONT", document_id="d1"), national_id("BACK", document_id="d1", document_number="X1")]
    )
    assert rejects(g) == {1: "conflicting_fields", 2: "conflicting_fields"}
    assert all("document_number" in r.message for r in g.rejects)


def test_conflicting_number_between_sides_without_document_id() -> None:
    g = group([national_id("FRONT"), national_id("BACK", document_number="OTHER1")])
    assert rejects(g) == {1: "conflicting_fields", 2: "conflicting_fields"}


def test_conflicting_dates_between_sides() -> None:
    g = group([national_id("FRONT"), national_id("BACK", expiry_date="2031-01-01")])
    assert rejects(g) == {1: "conflicting_fields", 2: "conflicting_fields"}
    assert "expiry_date" in g.rejects[0].message


def test_exact_duplicate_rows() -> None:
    g = group([passport(), passport(), passport()])
    assert rejects(g) == {2: "duplicate_row", 3: "duplicate_row"}
    assert len(g.documents) == 1 and g.documents[0].row_numbers == (1,)
    assert "row 1" in g.rejects[0].message


def test_same_file_in_two_documents() -> None:
    shared = "s3://kyc-docs/shared.pdf"
    g = group(
        [passport(s3_uri=shared), bill(s3_uri=shared), bill(s3_uri=shared, document_type="BANK_STATEMENT")]
    )
    assert rejects(g) == {2: "duplicate_file", 3: "duplicate_file"}
    assert [d.type for d in g.documents] == ["PASSPORT"]


def test_same_file_both_sides() -> None:
    g = group(
        [
            national_id("FRONT", s3_uri="s3://kyc-docs/x.pdf"),
            national_id("BACK", s3_uri="s3://kyc-docs/x.pdf"),
        ]
    )
    assert rejects(g) == {1: "duplicate_file", 2: "duplicate_file"}


def test_same_file_for_two_customers_is_fine() -> None:
    g = group([passport(), passport(customer_id=CUST2)])
    assert g.rejects == [] and len(g.documents) == 2


def test_document_id_grouping() -> None:
    g = group(
        [
            passport(),
            bill(document_id="b1"),
            bill(document_id="b1", s3_uri="s3://kyc-docs/b2.pdf"),
            bill(document_id="b2", s3_uri="s3://kyc-docs/b3.pdf"),
        ]
    )
    assert g.rejects == []
    assert sorted(len(d.files) for d in g.documents if d.type == "UTILITY_BILL") == [1, 2]


# --- no_identifying_document (rule 6) ---


def test_party_with_only_address_and_supporting_documents_is_rejected() -> None:
    g = group([bill(), bill(document_type="VISA", s3_uri="s3://kyc-docs/v.pdf"), passport(associated_party_id=PARTY2)])
    assert rejects(g) == {1: "no_identifying_document", 2: "no_identifying_document"}
    assert [d.type for d in g.documents] == ["PASSPORT"]
    assert all("A12345678" not in (r.message or "") for r in g.rejects)


def test_a_party_whose_identifying_document_is_rejected_loses_its_bill_too() -> None:
    g = group([national_id("FRONT"), bill()])
    assert rejects(g) == {1: "missing_side", 2: "no_identifying_document"}


def test_the_identifying_document_of_another_customer_does_not_count() -> None:
    g = group([passport(customer_id=CUST2), bill()])
    assert rejects(g) == {2: "no_identifying_document"}


def test_a_party_named_by_email_matches_its_identifying_document_by_email() -> None:
    email = "ada@example.com"
    g = group([passport(associated_party_email=email), bill(associated_party_id=None, associated_party_email=email)])
    assert g.rejects == []


def test_id_on_one_row_and_only_email_on_another_is_left_to_the_flow() -> None:
    """The manifest cannot tell whether the email names the party of the id: the flow decides once resolved."""
    g = group([passport(), bill(associated_party_id=None, associated_party_email="maybe.same@example.com")])
    assert g.rejects == [] and len(g.documents) == 2
    g = group([passport(associated_party_id=None, associated_party_email="maybe.same@example.com"), bill()])
    assert g.rejects == [] and len(g.documents) == 2


def test_party_key_separates_documents() -> None:
    g = group([passport(), passport(associated_party_id=PARTY2, s3_uri="s3://kyc-docs/q.pdf")])
    assert g.rejects == [] and len(g.documents) == 2


def test_email_party_key() -> None:
    g = group([passport(associated_party_id=None, associated_party_email="A@B.co")])
    (d,) = g.documents
    assert d.party_id is None and d.party_email == "a@b.co" and d.party_key == "a@b.co"


def test_invalid_sibling_rejects_document() -> None:
    g = group([national_id("FRONT"), national_id("BACK", s3_uri="http://nope")])
    # row 2 is rejected by validation (not repeated here); row 1 follows it.
    assert rejects(g) == {1: "document_rejected"}
    assert "row 2" in g.rejects[0].message


def test_empty_input() -> None:
    g = group([])
    assert g.documents == [] and g.rejects == []


def test_document_repr_hides_number() -> None:
    (d,) = group([passport(document_number="SECRET99")]).documents
    assert "SECRET99" not in repr(d) and d.customer_id == CUST


def test_residence_permit_as_one_image_or_as_front_and_back() -> None:
    permit = {"document_type": "RESIDENCE_PERMIT"}
    one = group([passport(**permit)])
    both = group([passport(**permit, side="FRONT"), passport(**permit, side="BACK", s3_uri="s3://kyc-docs/p2.pdf")])
    three = group([passport(**permit, side="FRONT"), passport(**permit, side="BACK", s3_uri="s3://kyc-docs/p2.pdf"),
                   passport(**permit, s3_uri="s3://kyc-docs/p3.pdf")])
    assert one.rejects == [] and len(one.documents) == 1
    assert both.rejects == [] and [sorted(f.side or "" for f in d.files) for d in both.documents] == [["BACK", "FRONT"]]
    assert set(rejects(three).values()) == {"too_many_files"}
    back_only = group([passport(**permit, side="BACK")])
    assert rejects(back_only) == {1: "missing_side"}


def test_passport_with_front_is_one_document() -> None:
    g = group([passport(side="FRONT")])
    assert g.rejects == [] and [f.side for f in g.documents[0].files] == ["FRONT"]
