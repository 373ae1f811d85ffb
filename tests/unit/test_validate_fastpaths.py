"""The plan's fast paths in validation give exactly what the plain kernels and full regexes give."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.validate import _S3_BAD_RE, _S3_RE, _clean, _s3_uri_bad

PIECES = ["s3://", "kyc-docs", "/", "a", "..", ".", "1", "10.0.0.1", "\x07", "\n", "\x85", "\u00a0", " ", "\t",
          "B", "é", "-", "docs/x.pdf", "", "\u2003", "_"]
texts = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
values = st.lists(st.one_of(st.none(), texts, st.text(max_size=12)), max_size=40)


def _plain_clean(col: pa.Array, name: str) -> pa.Array:
    s = pc.utf8_trim_whitespace(col)
    if name == "side":
        s = pc.ascii_upper(s)
    elif name == "associated_party_email":
        s = pc.utf8_lower(s)
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


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from(["side", "associated_party_email", "customer_id", "document_number"]),
       st.integers(0, 3))
def test_clean_is_the_plain_kernels(vals: list[str | None], name: str, cut: int) -> None:
    col = pa.array(["pad"] * cut + vals, pa.string()).slice(cut)
    got = _clean(col, name)
    got.validate(full=True)
    assert got.to_pylist() == _plain_clean(col, name).to_pylist()
