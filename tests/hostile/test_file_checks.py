"""File checks at both ends (issue 16): the upload and the dry run refuse a file whose signature is right but
whose structure is not (cut short, too small, bytes appended after its end marker), and neither reads a file
twice: the upload checks the end of a file that came whole in its first read without another request, and a
larger one with one ranged GET of its last 2 KiB; the dry run reads only a head and a tail.

Real loopback S3 server; the boto3 client is wrapped only to count the requests it makes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connectors.errors import RowRejected
from connectors.files import check_file, fetch_source
from connectors.objects import ObjectStore
from connectors.s3 import S3Store, make_s3_client
from flows.commands.demo_samples import sample_jpeg, sample_pdf, sample_png
from tests.hostile.helpers import EXE, ZIP


class CountingClient:
    """A real boto3 client that notes each get_object/head_object call and its Range."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, str | None]] = []

    def get_object(self, **kw: Any) -> Any:
        self.calls.append(("GET", kw.get("Range")))
        return self._client.get_object(**kw)

    def head_object(self, **kw: Any) -> Any:
        self.calls.append(("HEAD", None))
        return self._client.head_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


BIG = 40_000  # several times the upload's first read in these tests (chunk_bytes=4096)
BAD = {
    "pdf_with_zip.pdf": (sample_pdf("x") + ZIP, "bad_file_structure"),
    "big_pdf_with_zip.pdf": (sample_pdf("x", pad_to=BIG) + ZIP, "bad_file_structure"),
    "png_then_exe.png": (b"\x89PNG\r\n\x1a\n" + EXE, "bad_file_structure"),
    "big_png_then_exe.png": (sample_png(pad_to=BIG) + EXE, "bad_file_structure"),
    "five_bytes.pdf": (b"%PDF-", "bad_file_structure"),
    "jpeg_then_text.jpg": (b"\xff\xd8\xff" + b"plain text\n" * 30, "bad_file_structure"),
    "big_jpeg_cut_short.jpg": (sample_jpeg(pad_to=BIG)[:-100], "bad_file_structure"),
    "exe_named.pdf": (EXE, "bad_file_type"),
}
GOOD = {
    "small.pdf": sample_pdf("small"),
    "big.pdf": sample_pdf("big", pad_to=BIG),
    "big.png": sample_png(pad_to=BIG),
    "big.jpg": sample_jpeg(pad_to=BIG),
}


@pytest.fixture()
def store(bucket: str) -> tuple[ObjectStore, CountingClient]:
    client = make_s3_client()
    for name, (data, _) in BAD.items():
        client.put_object(Bucket=bucket, Key=name, Body=data)
    for name, data in GOOD.items():
        client.put_object(Bucket=bucket, Key=name, Body=data)
    counting = CountingClient(client)
    return ObjectStore(S3Store(counting)), counting


async def _upload_bytes(s3: ObjectStore, uri: str) -> bytes:
    source = await fetch_source(s3, uri, max_bytes=1 << 20, chunk_bytes=4096)
    try:
        return b"".join([c async for c in source.chunks()])
    finally:
        source.close()


@pytest.mark.parametrize("name", sorted(BAD))
def test_upload_refuses_before_sending(name: str, bucket: str, store: tuple[ObjectStore, CountingClient]) -> None:
    s3, _ = store
    with pytest.raises(RowRejected) as info:
        asyncio.run(fetch_source(s3, f"s3://{bucket}/{name}", max_bytes=1 << 20, chunk_bytes=4096))
    assert info.value.reason_code == BAD[name][1]
    assert str(info.value).startswith("s3_uri: ")


@pytest.mark.parametrize("name", sorted(BAD))
def test_dry_run_check_refuses_the_same(name: str, bucket: str, store: tuple[ObjectStore, CountingClient]) -> None:
    s3, counting = store
    with pytest.raises(RowRejected) as info:
        asyncio.run(check_file(s3, f"s3://{bucket}/{name}", max_bytes=1 << 20))
    assert info.value.reason_code == BAD[name][1]
    assert all(kind == "HEAD" or rng for kind, rng in counting.calls), "the dry run read a whole file"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_whole_files_pass_and_are_read_once(name: str, bucket: str, store: tuple[ObjectStore, CountingClient]) -> None:
    s3, counting = store
    assert asyncio.run(_upload_bytes(s3, f"s3://{bucket}/{name}")) == GOOD[name]
    whole_reads = [c for c in counting.calls if c == ("GET", None)]
    assert len(whole_reads) == 1
    small = len(GOOD[name]) <= 4096
    assert [c for c in counting.calls if c[1]] == ([] if small else [("GET", "bytes=-2048")])
    counting.calls.clear()
    asyncio.run(check_file(s3, f"s3://{bucket}/{name}", max_bytes=1 << 20))
    assert ("GET", None) not in counting.calls
