"""Source documents on S3: checked before upload, then streamed in chunks, hashed on the way.

A file is never held whole in memory: the upload body is read from S3 one chunk at a time (boto3 is
blocking, so each read runs in a worker thread and the event loop stays free).

Checks before a byte goes to the API: size (from the GET's headers), signature (the first bytes) and structure
(a minimum size and the format's end marker, :mod:`transforms.file_structure`). Every read after the first
carries ``If-Match`` on the ETag seen first, so a replaced object is ``source_changed`` and a deleted one
``missing_object`` at once, never retried.

This module is where the storage's neutral errors (``ObjectMissing``, ``ObjectChanged``) become the row's
``RowRejected``: a source file is one row's, so what is wrong with it is that row's outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import filetype
from botocore.exceptions import BotoCoreError, ClientError

from connectors.errors import ObjectChanged, ObjectMissing, RowRejected, SourceUnreadable
from connectors.objects import ObjectStore
from connectors.s3 import Location, ObjectInfo
from transforms.codes import Reason
from transforms.file_structure import TAIL_BYTES, structure_problem

ACCEPTED_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}
SNIFF_BYTES = 262  # what filetype needs to recognise every signature it knows


@contextmanager
def _refusals_as_rejections() -> Iterator[None]:
    """The storage's neutral refusals as this row's rejection (``source_changed``, ``missing_object``); a read the
    store kept refusing (throttled, failing) as this row's failure, named by S3's error code, never the key."""
    try:
        yield
    except ObjectChanged as exc:
        raise RowRejected(Reason.source_changed, f"s3_uri: {exc}") from None
    except ObjectMissing as exc:
        raise RowRejected(Reason.missing_object, f"s3_uri: {exc}") from None
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        said = f"{type(exc).__name__} {code}" if code else type(exc).__name__
        raise SourceUnreadable(f"s3_uri: the store refused the read through every retry ({said})") from None


def source_location(s3_uri: str) -> Location:
    """The location of an ``s3://bucket/key`` that validation has already accepted (taken as written: the key is
    the object's name, not a path to normalise)."""
    bucket, _, key = s3_uri[5:].partition("/")
    return Location(bucket, key)


@dataclass
class SourceFile:
    """One checked source object, ready to be streamed (more than once, if the upload is retried)."""

    store: ObjectStore
    loc: Location
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
        self.sha256 = None
        body, first = self._first_body, self._first_chunk
        self._first_body, self._first_chunk = None, b""
        if body is None:
            with _refusals_as_rejections():
                body = await asyncio.to_thread(self.store.open, self.loc, etag=self.info.etag)
            first = await asyncio.to_thread(body.read, self.chunk_bytes)
        try:
            chunk, sent = first, 0
            while chunk:
                digest.update(chunk)
                sent += len(chunk)
                if sent >= self.info.size:
                    # known before the last chunk goes: a consumer that stops once it has the size never resumes
                    self.sha256 = digest.hexdigest()
                    yield chunk
                    break  # a small file came whole in the first read: no worker-thread hop to learn it ended
                yield chunk
                chunk = await asyncio.to_thread(body.read, self.chunk_bytes)
        finally:
            body.close()

    def close(self) -> None:
        """Release the stream opened for the check if it was never used."""
        if self._first_body is not None:
            self._first_body.close()
            self._first_body = None


def _check_size(info: ObjectInfo, max_bytes: int) -> None:
    if info.size == 0:
        raise RowRejected(Reason.empty_file, "s3_uri: the file is empty")
    if info.size > max_bytes:
        raise RowRejected(Reason.file_too_large, f"s3_uri: the file is larger than the {max_bytes}-byte cap")


def _sniff(first: bytes) -> str:
    kind = filetype.guess(first[:SNIFF_BYTES])
    mime: str | None = kind.mime if kind else None
    if mime is None or mime not in ACCEPTED_TYPES:
        raise RowRejected(Reason.bad_file_type, "s3_uri: the file's content is not PDF, JPEG or PNG")
    return mime


def check_content(store: ObjectStore, loc: Location, info: ObjectInfo, head: bytes, tail: bytes | None) -> str:
    """The file's type once its first bytes show PDF, JPEG or PNG and its end shows the whole file of that type.

    ``tail`` is the file's last bytes when the caller has them (a file that came whole in its first read);
    otherwise they are read with one ranged GET, pinned to the ETag seen first. Blocking: run it in a thread.
    """
    mime = _sniff(head)
    if tail is None:
        tail = store.read_range(loc, f"-{TAIL_BYTES}", etag=info.etag or None)
    problem = structure_problem(mime, info.size, tail)
    if problem is not None:
        raise RowRejected(Reason.bad_file_structure, problem)
    return mime


def _first_read_checked(store: ObjectStore, loc: Location, info: ObjectInfo, body: Any,
                        chunk_bytes: int) -> tuple[bytes, str]:
    """Read the first chunk and check the content (type and structure); the body is closed on any failure.

    Why a ranged GET for the tail rather than checking the last bytes as they stream past: the upload must not
    be sent at all when the end is wrong, and the last bytes arrive only after the rest has gone to the API.
    Aborting the body then would leave a cut-off request at Fin and its outcome to the transport's error
    mapping. Most documents fit in the first chunk (1 MiB), whose tail is at hand: no extra request. Only
    larger files pay one GET of 2 KiB: measured on loopback (bench/bench_tail_check.py, a busy 2-core machine)
    ~8 ms against ~28 ms for the whole upload of a 2 MiB file, ~15 ms against ~74 ms for 8 MiB. Loopback
    makes the upload look cheap; against a remote API the share is smaller still.
    """
    try:
        first = body.read(min(chunk_bytes, info.size))
        whole = len(first) >= info.size
        mime = check_content(store, loc, info, first, first[-TAIL_BYTES:] if whole else None)
    except BaseException:
        body.close()
        raise
    return first, mime


def _get_checked(store: ObjectStore, loc: Location, max_bytes: int,
                 chunk_bytes: int) -> tuple[ObjectInfo, Any, bytes, str]:
    """One GET: check size from its headers, read the first chunk, check the content (one worker-thread hop)."""
    info, body = store.get(loc)
    try:
        _check_size(info, max_bytes)
    except BaseException:
        body.close()
        raise
    first, mime = _first_read_checked(store, loc, info, body, chunk_bytes)
    return info, body, first, mime


async def fetch_source(store: ObjectStore, s3_uri: str, *, max_bytes: int, chunk_bytes: int = 1 << 20) -> SourceFile:
    """``check_object`` + ``open_source`` in one S3 request: the GET's response carries size and ETag.

    Rejects like them (missing, empty, too large, bad content signature or structure); a too-large object is
    refused from its headers, before any of its bytes are read.
    """
    loc = source_location(s3_uri)
    with _refusals_as_rejections():
        info, body, first, mime = await asyncio.to_thread(_get_checked, store, loc, max_bytes, chunk_bytes)
    return SourceFile(store, loc, info, mime, ACCEPTED_TYPES[mime], chunk_bytes, body, first)


async def check_object(store: ObjectStore, s3_uri: str, *, max_bytes: int) -> ObjectInfo:
    """HEAD the object and check its size; ``RowRejected`` when it is missing, empty or too large."""
    loc = source_location(s3_uri)
    with _refusals_as_rejections():
        info = await asyncio.to_thread(store.head, loc)
    _check_size(info, max_bytes)
    return info


async def check_file(store: ObjectStore, s3_uri: str, *, max_bytes: int) -> ObjectInfo:
    """Every check the upload makes, without reading the file: HEAD for size, then ranged reads of its first
    bytes and its last :data:`TAIL_BYTES` (one read when the file is that small). For the dry run."""
    loc = source_location(s3_uri)

    def check() -> ObjectInfo:
        info = store.head(loc)
        _check_size(info, max_bytes)
        etag = info.etag or None
        if info.size <= TAIL_BYTES:
            whole = store.read_range(loc, f"0-{info.size - 1}", etag=etag)
            check_content(store, loc, info, whole, whole)
        else:
            check_content(store, loc, info, store.read_range(loc, f"0-{SNIFF_BYTES - 1}", etag=etag), None)
        return info

    with _refusals_as_rejections():
        return await asyncio.to_thread(check)


async def open_source(store: ObjectStore, s3_uri: str, info: ObjectInfo, *,
                      chunk_bytes: int = 1 << 20) -> SourceFile:
    """Open the object checked by ``check_object`` (pinned to its ETag) and check its content."""
    loc = source_location(s3_uri)
    with _refusals_as_rejections():
        body = await asyncio.to_thread(store.open, loc, etag=info.etag)
        first, mime = await asyncio.to_thread(_first_read_checked, store, loc, info, body, chunk_bytes)
    return SourceFile(store, loc, info, mime, ACCEPTED_TYPES[mime], chunk_bytes, body, first)


async def hash_source(store: ObjectStore, s3_uri: str, info: ObjectInfo, *, chunk_bytes: int = 1 << 20) -> str:
    """The SHA-256 of an object's bytes: one full read, pinned to the ETag seen by the HEAD (``source_changed``
    when it was replaced since). What a file costs whose content the ledger and S3's checksums do not tell."""
    loc = source_location(s3_uri)

    def read() -> str:
        digest = hashlib.sha256()
        body = store.open(loc, etag=info.etag or None)
        try:
            while chunk := body.read(chunk_bytes):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest()

    with _refusals_as_rejections():
        return await asyncio.to_thread(read)
