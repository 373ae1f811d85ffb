"""The report's ``s3_uri`` hashed: the bucket kept, the key only as a SHA-256 prefix."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from transforms.report import MASK, hash_s3_uri_column, hashed_s3_uri


def test_the_key_is_replaced_by_a_prefix_of_its_sha256_and_the_bucket_stays() -> None:
    key = "K00/Erika_Mustermann/Reisepass.pdf"
    hashed = hashed_s3_uri(f"s3://archive/{key}")
    assert hashed == f"s3://archive/sha256:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    assert "Erika" not in hashed and "Mustermann" not in hashed


def test_the_same_key_hashes_alike_and_other_keys_or_buckets_do_not() -> None:
    uri = "s3://archive/K00/Max_Muster/ausweis-vorne.jpg"
    assert hashed_s3_uri(uri) == hashed_s3_uri(uri)
    assert hashed_s3_uri(uri) != hashed_s3_uri(uri.replace("vorne", "hinten"))
    assert hashed_s3_uri(uri).split("/sha256:")[1] == hashed_s3_uri(uri.replace("archive", "other")).split(
        "/sha256:")[1]


def test_a_value_that_is_not_an_s3_uri_is_hashed_whole() -> None:
    assert hashed_s3_uri("Max_Muster/pass.pdf") == (
        "sha256:" + hashlib.sha256(b"Max_Muster/pass.pdf").hexdigest()[:16])


def test_the_column_keeps_empty_and_masked_cells_and_hashes_each_distinct_value_once() -> None:
    col = pa.chunked_array([["s3://b/Ann_Lee/a.pdf", None, MASK], ["s3://b/Ann_Lee/a.pdf", ""]])
    out = hash_s3_uri_column(col).to_pylist()
    assert out == [hashed_s3_uri("s3://b/Ann_Lee/a.pdf"), None, MASK, hashed_s3_uri("s3://b/Ann_Lee/a.pdf"), ""]
