"""The plan's fast paths in validation give exactly what the plain kernels and full regexes give."""

from __future__ import annotations

import re
import uuid

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.helpers import passport, rules, table
from transforms.sharding import slot_of_row, slots_of
from transforms.uuids import UUID_RE, is_uuid, uuid_words
from transforms.validate import _S3_BAD_RE, _S3_RE, _clean, _s3_uri_bad, validate_batch

PIECES = ["s3://", "kyc-docs", "/", "a", "..", ".", "1", "10.0.0.1", "\x07", "\n", "\x85", "\u00a0", " ", "\t",
          "B", "é", "-", "docs/x.pdf", "", "\u2003", "_",
          # whole prefixes, so that a batch holds several S3 buckets (and more than the prefix check's rounds)
          "s3://kyc-docs/", "s3://other.b/", "s3://ab/", "s3://a/", "s3://9lives/", "s3://" + "b" * 64 + "/"]
texts = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
values = st.lists(st.one_of(st.none(), texts, st.text(max_size=12)), max_size=40)


def _plain_clean(col: pa.Array, name: str) -> pa.Array:
    s = pc.utf8_trim_whitespace(pc.utf8_normalize(col, form="NFKC") if name == "associated_party_email" else col)
    if name == "side":
        s = pc.ascii_upper(s)
    elif name == "associated_party_email":
        s = pa.array([v.casefold() if v is not None else None for v in s.to_pylist()], pa.string())
    elif name == "customer_id":
        s = pc.ascii_lower(s)
    return pc.if_else(pc.equal(pc.binary_length(s), 0), pa.scalar(None, pa.string()), s)


@settings(max_examples=400, deadline=None)
@given(values, st.integers(0, 3))
def test_s3_uri_bad_is_the_full_regexes(vals: list[str | None], cut: int) -> None:
    uri = pa.array(["pad"] * cut + vals, pa.string()).slice(cut)  # a sliced array too
    expected = pc.or_(pc.invert(pc.fill_null(pc.match_substring_regex(uri, _S3_RE), False)),
                      pc.fill_null(pc.match_substring_regex(uri, _S3_BAD_RE), False))
    assert _s3_uri_bad(uri).to_pylist() == expected.to_pylist()


def test_s3_uri_bad_finds_each_flagged_byte_among_good_rows() -> None:
    """The byte checks that send a row to the full patterns, each hidden in a batch of rows with a good prefix."""
    good = ["s3://kyc-docs/a/b.pdf"] * 5
    tricky = ["s3://kyc-docs/a/../b.pdf", "s3://kyc-docs/a/..", "s3://kyc..docs/b.pdf", "s3://10.0.0.1/b.pdf",
              "s3://kyc-docs/a\x07b.pdf", "s3://kyc-docs/a\x85b.pdf", "s3://kyc-docs/a..b.pdf"]
    for bad in tricky:
        uri = pa.array([*good, bad, *good], pa.string())
        expected = pc.or_(pc.invert(pc.fill_null(pc.match_substring_regex(uri, _S3_RE), False)),
                          pc.fill_null(pc.match_substring_regex(uri, _S3_BAD_RE), False))
        assert _s3_uri_bad(uri).to_pylist() == expected.to_pylist(), bad


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from(["side", "associated_party_email", "customer_id", "document_number"]),
       st.integers(0, 3))
def test_clean_is_the_plain_kernels(vals: list[str | None], name: str, cut: int) -> None:
    col = pa.array(["pad"] * cut + vals, pa.string()).slice(cut)
    got = _clean(col, name)
    got.validate(full=True)
    assert got.to_pylist() == _plain_clean(col, name).to_pylist()


UUID = "6f1c2a3b-1111-4222-8333-444455556666"
# A uuid with one character changed, dropped or added (same length or not), and some other text.
uuid_like = st.one_of(
    st.tuples(st.integers(0, 35), st.sampled_from("0a9fgG-_ xé")).map(lambda t: UUID[: t[0]] + t[1] + UUID[t[0] + 1:]),
    st.integers(0, 35).map(lambda i: UUID[:i] + UUID[i + 1:]),
    st.tuples(st.integers(0, 36), st.sampled_from("0a-")).map(lambda t: UUID[: t[0]] + t[1] + UUID[t[0]:]),
    st.uuids().map(str),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), uuid_like), max_size=30), st.integers(0, 3))
def test_uuid_words_are_the_uuids_bits(vals: list[str | None], cut: int) -> None:
    ids = pa.array(["pad"] * cut + vals, pa.string()).slice(cut)  # a sliced array too
    canonical = is_uuid(ids)
    assert canonical.tolist() == [v is not None and re.fullmatch(UUID_RE[1:-1], v) is not None for v in vals]
    words = uuid_words(ids, canonical)
    for v, ok, (high, low) in zip(vals, canonical, words.tolist(), strict=True):
        expected = uuid.UUID(v).int if ok else 0
        assert (high << 64) | low == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), uuid_like), min_size=1, max_size=20))
def test_each_rows_slot_is_its_ids_slot_and_minus_one_without_an_id(ids: list[str | None]) -> None:
    col = pa.array(ids, pa.string())
    expected = [-1 if v is None else b for v, b in zip(ids, slots_of(col, 16), strict=True)]
    assert slot_of_row(col, 16).tolist() == expected
    assert slot_of_row(pa.chunked_array([col.slice(0, 1), col.slice(1)]), 16).tolist() == expected


def test_spelling_does_not_move_a_customer_to_another_slot() -> None:
    spellings = ["6f1c2a3b-1111-4222-8333-444455556666", " 6F1C2A3B-1111-4222-8333-444455556666\u00a0"]
    out = validate_batch(table([passport(customer_id=c) for c in spellings]), rules=rules(), first_row_number=1)
    assert slot_of_row(out.column("customer_id"), 16).tolist() == [7, 7]
