"""Source documents on S3: checked before upload, then streamed in chunks, hashed on the way.

A file is never held whole in memory: the upload body is read from S3 one chunk at a time (boto3 is
blocking, so each read runs in a worker thread and the event loop stays free).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import filetype

from connectors.errors import RowRejected
from connectors.s3 import ObjectInfo, S3Store

ACCEPTED_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}
_SNIFF_BYTES = 262  # what filetype needs to recognise every signature it knows


def split_s3_uri(s3_uri: str) -> tuple[str, str]:
    """Bucket and key of an ``s3://bucket/key`` that validation has already accepted."""
    bucket, _, key = s3_uri[5:].partition("/")
    return bucket, key


@dataclass
class SourceFile:
    """One checked source object, ready to be streamed (more than once, if the upload is retried)."""

    s3: S3Store
    bucket: str
    key: str
    info: ObjectInfo
    content_type: str
    extension: str
    chunk_bytes: int
    _first_body: Any = None
    _first_chunk: bytes = b""
    sha256: str | None = field(default=None)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The object's bytes in order; the first call reuses the stream opened for the check."""
        digest = hashlib.sha256()
        body, first = self._first_body, self._first_chunk
        self._first_body, self._first_chunk = None, b""
        if body is None:
            body = await asyncio.to_thread(self.s3.open, self.bucket, self.key, etag=self.info.etag)
            first = await asyncio.to_thread(body.read, self.chunk_bytes)
        try:
            chunk, sent = first, 0
            while chunk:
                digest.update(chunk)
                sent += len(chunk)
                yield chunk
                if sent >= self.info.size:
                    break  # a small file came whole in the first read: no worker-thread hop to learn it ended
                chunk = await asyncio.to_thread(body.read, self.chunk_bytes)
        finally:
            body.close()
        self.sha256 = digest.hexdigest()

    def close(self) -> None:
        """Release the stream opened for the check if it was never used."""
        if self._first_body is not None:
            self._first_body.close()
            self._first_body = None


def _check_size(info: ObjectInfo, max_bytes: int) -> None:
    if info.size == 0:
        raise RowRejected("empty_file", "s3_uri: the file is empty")
    if info.size > max_bytes:
        raise RowRejected("file_too_large", f"s3_uri: the file is larger than the {max_bytes}-byte cap")


def _sniff(first: bytes) -> str:
    kind = filetype.guess(first[:_SNIFF_BYTES])
    mime = kind.mime if kind else None
    if mime not in ACCEPTED_TYPES:
        raise RowRejected("bad_file_type", "s3_uri: the file's content is not PDF, JPEG or PNG")
    return mime


def _get_checked(s3: S3Store, bucket: str, key: str, max_bytes: int, chunk_bytes: int) -> tuple[ObjectInfo, Any, bytes]:
    """One GET: check size from its headers, read the first chunk (all in one worker-thread hop)."""
    info, body = s3.get(bucket, key)
    try:
        _check_size(info, max_bytes)
        first = body.read(min(chunk_bytes, info.size))
    except BaseException:
        body.close()
        raise
    return info, body, first


async def fetch_source(s3: S3Store, s3_uri: str, *, max_bytes: int, chunk_bytes: int = 1 << 20) -> SourceFile:
    """``check_object`` + ``open_source`` in one S3 request: the GET's response carries size and ETag.

    Rejects like them (missing, empty, too large, bad content signature); a too-large object is refused
    from its headers, before any of its bytes are read.
    """
    bucket, key = split_s3_uri(s3_uri)
    info, body, first = await asyncio.to_thread(_get_checked, s3, bucket, key, max_bytes, chunk_bytes)
    return _typed_source(s3, bucket, key, info, body, first, chunk_bytes)


async def check_object(s3: S3Store, s3_uri: str, *, max_bytes: int) -> ObjectInfo:
    """HEAD the object and check its size; ``RowRejected`` when it is missing, empty or too large."""
    bucket, key = split_s3_uri(s3_uri)
    info = await asyncio.to_thread(s3.head, bucket, key)
    _check_size(info, max_bytes)
    return info


async def open_source(s3: S3Store, s3_uri: str, info: ObjectInfo, *, chunk_bytes: int = 1 << 20) -> SourceFile:
    """Open the object checked by ``check_object`` and check its content signature from the first bytes."""
    bucket, key = split_s3_uri(s3_uri)
    body = await asyncio.to_thread(s3.open, bucket, key, etag=info.etag)
    first = await asyncio.to_thread(body.read, chunk_bytes)
    return _typed_source(s3, bucket, key, info, body, first, chunk_bytes)


def _typed_source(s3: S3Store, bucket: str, key: str, info: ObjectInfo, body: Any, first: bytes,
                  chunk_bytes: int) -> SourceFile:
    """The opened object as a ``SourceFile`` once its first bytes show PDF, JPEG or PNG; else closed and rejected."""
    try:
        mime = _sniff(first)
    except RowRejected:
        body.close()
        raise
    return SourceFile(s3, bucket, key, info, mime, ACCEPTED_TYPES[mime], chunk_bytes, body, first)
