"""The one storage interface: its listings carry the owner check, its errors are neutral, its copies stream."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connectors.errors import ObjectChanged, ObjectMissing, RowRejected, SetupError
from connectors.files import check_object
from connectors.jobs import list_manifests
from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store
from transforms.codes import Reason

OWNER = "111122223333"


class _Pages:
    def __init__(self, calls: list[dict[str, Any]], contents: list[dict[str, Any]]) -> None:
        self.calls, self.contents = calls, contents

    def paginate(self, **kw: Any) -> list[dict[str, Any]]:
        self.calls.append(kw)
        return [{"Contents": [c for c in self.contents if c["Key"].startswith(kw["Prefix"])]}]


class _ListingClient:
    """A boto3 stand-in that answers list_objects_v2 and notes what each listing was asked with."""

    def __init__(self, contents: list[dict[str, Any]]) -> None:
        self.calls: list[dict[str, Any]] = []
        self.contents = contents

    def get_paginator(self, name: str) -> _Pages:
        assert name == "list_objects_v2"
        return _Pages(self.calls, self.contents)


class _RefusingClient:
    """A boto3 stand-in whose reads are refused with the given S3 error code."""

    def __init__(self, code: str) -> None:
        self.code = code

    def _refuse(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": self.code, "Message": ""}}, "GetObject")

    head_object = get_object = _refuse


def test_the_inbox_is_listed_through_the_store_with_the_expected_bucket_owner() -> None:
    client = _ListingClient([
        {"Key": "inbox/b.csv", "Size": 5, "ETag": '"e-b"', "LastModified": datetime(2026, 1, 2, tzinfo=UTC)},
        {"Key": "inbox/a.parquet", "Size": 5, "ETag": '"e-a"', "LastModified": datetime(2026, 1, 1, tzinfo=UTC)},
        {"Key": "inbox/notes.txt", "Size": 5, "ETag": '"e-n"', "LastModified": datetime(2025, 1, 1, tzinfo=UTC)},
        {"Key": "other/c.csv", "Size": 5, "ETag": '"e-c"', "LastModified": datetime(2025, 1, 1, tzinfo=UTC)},
    ])
    store = ObjectStore(S3Store(client, expected_bucket_owner=OWNER))  # type: ignore[arg-type]

    found = list_manifests(store, "s3://bucket/inbox/")

    assert [(m.uri, m.content_id) for m in found] == [("s3://bucket/inbox/a.parquet", "e-a"),
                                                       ("s3://bucket/inbox/b.csv", "e-b")]
    assert client.calls and all(kw.get("ExpectedBucketOwner") == OWNER for kw in client.calls)


@pytest.mark.parametrize(("code", "neutral", "reason"), [
    ("NoSuchKey", ObjectMissing, Reason.missing_object),
    ("AccessDenied", ObjectMissing, Reason.missing_object),
    ("PreconditionFailed", ObjectChanged, Reason.source_changed),
])
def test_the_adapter_says_what_happened_and_the_file_check_makes_it_the_row_s_reason(
        code: str, neutral: type[Exception], reason: Reason) -> None:
    s3 = S3Store(_RefusingClient(code))  # type: ignore[arg-type]
    with pytest.raises(neutral) as raised:
        s3.open("bucket", "docs/a.pdf", etag="e1")
    assert not isinstance(raised.value, RowRejected)

    with pytest.raises(RowRejected) as rejected:
        asyncio.run(check_object(ObjectStore(s3), "s3://bucket/docs/a.pdf", max_bytes=1 << 20))
    assert rejected.value.reason_code is reason
    assert str(rejected.value).startswith("s3_uri: ")


def test_write_file_copies_a_local_file_without_reading_it_whole(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "rows.arrow"
    data = bytes(range(256)) * 4096  # 1 MiB
    source.write_bytes(data)
    dest = Location(None, str(tmp_path / "copy" / "rows.arrow"))

    def whole(_: Path) -> bytes:
        raise AssertionError("the file was read whole")

    monkeypatch.setattr(Path, "read_bytes", whole)
    store = ObjectStore(None)
    store.write_file(dest, source, content_type="application/octet-stream")
    monkeypatch.undo()

    assert Path(dest.key).read_bytes() == data
    with pytest.raises(SetupError, match="never overwritten"):
        store.write_file(dest, source, content_type="application/octet-stream")
