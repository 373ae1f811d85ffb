"""A document number holds only what it shows: ASCII letters, digits and the separators, after NFKC."""

from __future__ import annotations

import re
import unicodedata

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.helpers import bill, passport, validate
from transforms.validate import _document_number

NUMBER = "bad_characters", ("document_number: holds a character other than ASCII letters, digits and the "
                            "separators - / . and space (after NFKC)")


@pytest.mark.parametrize("number", [
    "A12345678", "NID-987654", "dl987654321", "12/345.678", "AB 123456",
    "ＡＢ１２３４５６",  # full-width forms: NFKC reads them as the ASCII letters and digits they are
])
def test_numbers_of_letters_digits_and_separators_pass(number: str) -> None:
    out = validate([passport(document_number=number)])
    assert out.column("reason_code").to_pylist() == [None]
    assert out.column("document_number").to_pylist()[0].isascii()


@pytest.mark.parametrize("number", [
    "А12345678",  # Cyrillic A
    "A1234567О",  # Cyrillic O
    "AB\u00a0123456",  # no-break space inside
    "AB\u2009123456",  # thin space
    "AB\u3000123456",  # ideographic space
    "A1\u03012345678",  # combining acute accent
    "ÄB123456",  # an accented letter, precomposed
    "№123456",  # NFKC spells it "No"
    "A_123456", "A#123456", "A+123456", "A'123456",
])
def test_look_alikes_unicode_spaces_accents_and_other_symbols_are_bad_characters(number: str) -> None:
    out = validate([passport(document_number=number)])
    assert (out.column("reason_code").to_pylist()[0], out.column("message").to_pylist()[0]) == NUMBER
    assert number not in out.column("message").to_pylist()[0]


def test_only_the_rows_with_a_bad_number_are_rejected_among_many() -> None:
    rows = [passport(document_number=f"A{i:08d}", s3_uri=f"s3://kyc-docs/p/{i}.pdf") for i in range(300)]
    rows[17]["document_number"] = "A0000001\u0405"  # Cyrillic DZE, looks like S
    rows[200]["document_number"] = "Ｐ00000200"
    rows[250]["associated_party_email"] = "é@example.com"  # non-ASCII elsewhere in the batch
    out = validate(rows)
    got = out.column("reason_code").to_pylist()
    assert [i for i, r in enumerate(got) if r] == [17]
    assert out.column("document_number").to_pylist()[200] == "P00000200"


def test_a_number_on_a_document_that_does_not_send_one_is_not_judged() -> None:
    assert validate([bill(document_number="№ ÄБ")]).column("reason_code").to_pylist() == [None]


_ALLOWED = re.compile(r"[A-Za-z0-9 ./-]*")
_UNICODE_SPACES = {chr(c) for c in (0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)}


def _plain_number_bad(value: str) -> bool:
    folded = unicodedata.normalize("NFKC", value)
    return not (_ALLOWED.fullmatch(folded) and len(folded) == len(value) and not _UNICODE_SPACES & set(value))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12), st.text("AZaz09-/. \u00a0\uff10\u0410\u0301№", max_size=12)),
                max_size=20), st.integers(0, 3))
def test_the_byte_fast_path_is_the_plain_rule(values: list[str | None], cut: int) -> None:
    col = pa.array(["pad"] * cut + values, pa.string()).slice(cut)  # a sliced array too
    normalised, bad = _document_number(col)
    expected = [v is not None and _plain_number_bad(v) for v in values]
    assert (bad.to_pylist() if bad is not None else [False] * len(values)) == expected
    # Values kept (not bad) are sent NFKC-normalised. A bad value is never sent, and its normal form may differ
    # between pyarrow's and Python's Unicode versions (U+1E030 is NFKC 'а' only in Unicode 15).
    kept = [(n, v) for n, v, b in zip(normalised.to_pylist(), values, expected, strict=True) if not b]
    assert [n for n, _ in kept] == [None if v is None else unicodedata.normalize("NFKC", v) for _, v in kept]
