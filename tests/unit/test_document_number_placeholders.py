"""A document number made of separators only is no number: an identifying document with one is not sent."""

from __future__ import annotations

import pytest

from tests.unit.helpers import bill, passport, validate


@pytest.mark.parametrize("number", ["-", ".", "/", "- -", "--/..", "\uff0d"])  # the last: a full-width hyphen
def test_an_identifying_document_whose_number_holds_no_letter_or_digit_is_refused(number: str) -> None:
    out = validate([passport(document_number=number)])
    assert out.column("reason_code").to_pylist() == ["missing_field"]
    assert out.column("message").to_pylist() == [
        "document_number: required for identifying documents, holds no letter or digit"]


def test_numbers_with_a_letter_or_digit_pass_beside_a_placeholder_in_the_same_batch() -> None:
    rows = [passport(document_number="P-1"), passport(document_number="-"), passport(document_number="./7"),
            passport(document_number="x"), bill(document_number="-")]
    assert validate(rows).column("reason_code").to_pylist() == [None, "missing_field", None, None, None]
