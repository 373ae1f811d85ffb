"""An S3 manifest is read whatever its key's name: S3 allows 1,024 bytes, a local file's name 255."""

from __future__ import annotations

from pathlib import Path

from connectors.manifest import open_manifest
from connectors.objects import Location, ObjectStore
from connectors.s3 import S3Store, make_s3_client


def test_a_manifest_whose_key_name_is_longer_than_a_file_name_is_read(bucket: str, tmp_path: Path) -> None:
    store = ObjectStore(S3Store(make_s3_client()))
    key = f"kyc/{'a' * 300}.csv"
    store.write(Location(bucket, key), b"customer_id,document_type\nc1,PASSPORT\n")
    manifest = open_manifest(f"s3://{bucket}/{key}", store=store, cache_dir=tmp_path)
    assert manifest.path.read_bytes().startswith(b"customer_id,")
    assert "a" * 20 not in manifest.path.name  # the copy is named by digests, never by the key's own name
