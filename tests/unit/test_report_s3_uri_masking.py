"""The report's ``s3_uri`` hashed: the bucket kept, the key only as an HMAC-SHA256 keyed by the ledger's secret."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest

from transforms.report import MASK, hash_s3_uri_column, hashed_s3_uri

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))


def test_the_key_is_replaced_by_its_keyed_digest_and_the_bucket_stays() -> None:
    key = "K00/Erika_Mustermann/Reisepass.pdf"
    hashed = hashed_s3_uri(f"s3://archive/{key}", SECRET)
    expected = hmac.new(SECRET, f"report:{key}".encode(), hashlib.sha256).hexdigest()[:32]
    assert hashed == f"s3://archive/hmac:{expected}"
    assert "Erika" not in hashed and "Mustermann" not in hashed


def test_a_list_of_likely_names_hashed_without_the_secret_finds_nothing() -> None:
    key = "K00/Erika_Mustermann/Reisepass.pdf"
    digest = hashed_s3_uri(f"s3://archive/{key}", SECRET).split("/hmac:")[1]
    assert hashlib.sha256(key.encode()).hexdigest()[:32] != digest
    assert hashlib.sha256(key.encode()).hexdigest()[:16] not in digest
    assert hashed_s3_uri(f"s3://archive/{key}", OTHER_SECRET).split("/hmac:")[1] != digest


def test_the_same_key_hashes_alike_and_other_keys_or_buckets_do_not() -> None:
    uri = "s3://archive/K00/Max_Muster/ausweis-vorne.jpg"
    assert hashed_s3_uri(uri, SECRET) == hashed_s3_uri(uri, SECRET)
    assert hashed_s3_uri(uri, SECRET) != hashed_s3_uri(uri.replace("vorne", "hinten"), SECRET)
    assert hashed_s3_uri(uri, SECRET).split("/hmac:")[1] == hashed_s3_uri(
        uri.replace("archive", "other"), SECRET).split("/hmac:")[1]


def test_a_value_that_is_not_an_s3_uri_is_hashed_whole() -> None:
    assert hashed_s3_uri("Max_Muster/pass.pdf", SECRET) == (
        "hmac:" + hmac.new(SECRET, b"report:Max_Muster/pass.pdf", hashlib.sha256).hexdigest()[:32])


def test_no_secret_is_refused_rather_than_hashed_with_an_empty_key() -> None:
    with pytest.raises(ValueError, match="secret"):
        hashed_s3_uri("s3://archive/K00/Max_Muster/pass.pdf", b"")


def test_the_column_keeps_empty_and_masked_cells_and_hashes_each_distinct_value_once() -> None:
    col = pa.chunked_array([["s3://b/Ann_Lee/a.pdf", None, MASK], ["s3://b/Ann_Lee/a.pdf", ""]])
    out = hash_s3_uri_column(col, SECRET).to_pylist()
    hashed = hashed_s3_uri("s3://b/Ann_Lee/a.pdf", SECRET)
    assert out == [hashed, None, MASK, hashed, ""]
