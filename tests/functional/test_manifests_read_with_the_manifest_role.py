"""Manifests are found and read with the manifest role's S3 client, wherever they are listed or opened: a store
whose default (report) role has no S3 client still lists an inbox and copies a manifest down through its manifest
role, against the S3 server."""

from __future__ import annotations

from pathlib import Path

from connectors.jobs import list_manifests
from connectors.manifest import open_manifest
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client


def test_an_inbox_is_listed_and_a_manifest_opened_through_the_manifest_role(bucket: str, tmp_path: Path) -> None:
    manifest_only = ObjectStore(None, manifest=S3Store(make_s3_client()))
    ObjectStore(S3Store(make_s3_client())).write(Location(bucket, "inbox/m.csv"), b"customer_id,s3_uri\n")

    found = list_manifests(manifest_only, f"s3://{bucket}/inbox/")
    opened = open_manifest(found[0].uri, store=manifest_only.manifests(), cache_dir=tmp_path)

    assert [m.uri for m in found] == [f"s3://{bucket}/inbox/m.csv"]
    assert opened.path.read_bytes() == b"customer_id,s3_uri\n"
