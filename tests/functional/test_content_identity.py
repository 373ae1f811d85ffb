"""A file's content identity on a real S3 server (moto over HTTP): S3's full-object checksum where it keeps one,
else the SHA-256 of one read; a multipart copy changes the ETag and keeps the bytes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from connectors.errors import RowRejected, SetupError
from connectors.files import hash_source
from connectors.ledger import DETAILS_SECRET, Ledger
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, full_object_checksum, make_s3_client
from transforms.codes import Reason

SCAN = b"%PDF-1.4\n%" + b"0" * (9 * 1024 * 1024) + b"\n%%EOF\n"  # above the 8 MB multipart threshold


def _store() -> ObjectStore:
    return ObjectStore(S3Store(make_s3_client()))


def test_head_gives_the_full_object_sha256_s3_keeps(bucket: str) -> None:
    make_s3_client().put_object(Bucket=bucket, Key="a.pdf", Body=b"%PDF-1.4 small", ChecksumAlgorithm="SHA256")
    info = _store().head(Location(bucket, "a.pdf"))
    assert info.sha256 == hashlib.sha256(b"%PDF-1.4 small").hexdigest()


def test_a_multipart_copy_has_a_new_etag_and_the_same_hash(bucket: str) -> None:
    s3, store = make_s3_client(), _store()
    s3.put_object(Bucket=bucket, Key="a.pdf", Body=SCAN)
    s3.copy({"Bucket": bucket, "Key": "a.pdf"}, bucket, "moved/a.pdf",
            Config=TransferConfig(multipart_threshold=8 * 1024 * 1024))
    first, copy = store.head(Location(bucket, "a.pdf")), store.head(Location(bucket, "moved/a.pdf"))
    assert first.etag != copy.etag and copy.etag.endswith("-2")
    assert copy.sha256 is None  # moto keeps no checksum for a multipart copy: the read is what tells
    hashes = {asyncio.run(hash_source(store, f"s3://{bucket}/{k}", i)) for k, i in
              (("a.pdf", first), ("moved/a.pdf", copy))}
    assert hashes == {hashlib.sha256(SCAN).hexdigest()}


def test_hashing_an_object_replaced_since_its_head_is_source_changed(bucket: str) -> None:
    s3, store = make_s3_client(), _store()
    s3.put_object(Bucket=bucket, Key="a.pdf", Body=b"%PDF-1.4 one")
    info = store.head(Location(bucket, "a.pdf"))
    s3.put_object(Bucket=bucket, Key="a.pdf", Body=b"%PDF-1.4 two")
    with pytest.raises(RowRejected) as caught:
        asyncio.run(hash_source(store, f"s3://{bucket}/a.pdf", info))
    assert caught.value.reason_code is Reason.source_changed


SHA = base64.b64encode(hashlib.sha256(b"x").digest()).decode()


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"ChecksumSHA256": SHA, "ChecksumType": "FULL_OBJECT"}, SHA),
        ({"ChecksumSHA256": SHA}, SHA),  # servers that do not say the type (moto): a single part's checksum
        ({"ChecksumSHA256": f"{SHA}-3"}, None),  # checksum of 3 parts' checksums: depends on the part size
        ({"ChecksumSHA256": SHA, "ChecksumType": "COMPOSITE"}, None),
        ({"ChecksumSHA256": "not base64!"}, None),
        ({}, None),
    ],
)
def test_only_a_full_object_checksum_is_an_identity(meta: dict[str, Any], expected: str | None) -> None:
    assert full_object_checksum(meta, "ChecksumSHA256") == expected


def _ledger(root: Path) -> Ledger:
    return Ledger(ObjectStore(None), Location(None, str(root)), linger_s=0)


def test_the_ledger_finds_recorded_bytes_by_source_etag_or_full_object_crc(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path).load(["c1"])
    assert not ledger.has_uploads("c1")
    asyncio.run(ledger.upload_done("c1", "s3://b/a.pdf", "e1", "fin://u1", sha256="a" * 64, crc64nvme="Zm9vYmFyMTI="))
    asyncio.run(ledger.upload_done("c1", "s3://b/no-etag.pdf", "", "fin://u2", sha256="b" * 64))
    asyncio.run(ledger.flush())

    again = _ledger(tmp_path).load(["c1"])
    assert again.has_uploads("c1") and not again.has_uploads("c2")
    assert again.content_sha256("c1", "s3://b/a.pdf", "e1", None) == "a" * 64
    assert again.content_sha256("c1", "s3://b/moved/a.pdf", "e9-2", "Zm9vYmFyMTI=") == "a" * 64  # a copy
    assert again.content_sha256("c1", "s3://b/a.pdf", "e2", None) is None  # overwritten since
    assert again.content_sha256("c2", "s3://b/a.pdf", "e1", "Zm9vYmFyMTI=") is None  # another customer's
    assert again.content_sha256("c1", "s3://b/no-etag.pdf", "", None) is None  # no ETag: it may be overwritten
    assert again.content_uri("c1", "a" * 64) == "fin://u1" and again.content_uri("c2", "a" * 64) is None


def test_the_details_secret_is_made_once_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    first = _ledger(tmp_path).load([]).details_secret
    assert len(first) == 32 and _ledger(tmp_path).load([]).details_secret == first
    (tmp_path / DETAILS_SECRET).write_text("not hex")
    with pytest.raises(SetupError, match=DETAILS_SECRET):
        _ledger(tmp_path).load([])
