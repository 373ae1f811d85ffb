"""S3 access: locations, object metadata, streamed reads, and safe writes.

Everything takes its boto3 client by injection (see ``make_s3_client``), so tests hand in one pointed
at a loopback S3 server and production uses boto3's default credential chain and ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypedDict, cast

from botocore.exceptions import ClientError

from connectors.errors import ObjectChanged, ObjectMissing, SetupError

if TYPE_CHECKING:  # the stubs are a development dependency; at run time the client is boto3's own
    import boto3
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef, ObjectIdentifierTypeDef


@dataclass(frozen=True, slots=True)
class Location:
    """A place that is either an S3 prefix/object (``s3://bucket/key``) or a local path."""

    bucket: str | None
    key: str

    @classmethod
    def parse(cls, text: str) -> Location:
        """Parse ``s3://bucket/key`` or a local path; ``SetupError`` for an empty one or a mistyped ``s3://``
        (``s3:/b``, ``S3://b``), which would otherwise quietly become a local folder."""
        if not text.strip():
            raise SetupError("location: empty")
        if text[:3].lower() == "s3:" and not text.startswith("s3://"):
            raise SetupError("location: starts like an S3 location but is not s3://bucket/key")
        if text.startswith("s3://"):
            bucket, _, key = text[5:].partition("/")
            if not bucket:
                raise SetupError("location: an s3:// location needs a bucket name")
            if any(part in (".", "..") for part in key.split("/")):
                # S3 keys are not paths: s3://b/x/../r is another prefix than s3://b/r (another ledger, so
                # everything attached again), and nobody means that.
                raise SetupError("location: '.' or '..' in an S3 key; write the prefix without them")
            return cls(bucket, key)
        return cls(None, text)

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def child(self, *parts: str) -> Location:
        """The location of ``parts`` under this one."""
        tail = "/".join(p.strip("/") for p in parts if p)
        base = self.key.rstrip("/")
        return Location(self.bucket, f"{base}/{tail}" if base else tail)

    def normalised(self) -> Location:
        """The same place written one way, for identities (job ids, the ledger root): an S3 key without
        repeated or leading ``/``; a local path absolute and normalised (``./``, ``//``, ``..`` resolved)."""
        if self.is_s3:
            return Location(self.bucket, re.sub(r"/{2,}", "/", self.key).lstrip("/"))
        return Location(None, str(Path(self.key).resolve()))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.is_s3 else self.key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a HEAD tells about an object."""

    size: int
    etag: str
    content_type: str | None
    modified: datetime | None = None
    # Checksums of the whole object's bytes, when S3 keeps one (a HEAD with checksum mode): a SHA-256 as hex, a
    # CRC64NVME as S3 gives it (base64). Composite checksums (of parts, "…-N") depend on the part size: left out.
    sha256: str | None = None
    crc64nvme: str | None = None


@dataclass(frozen=True, slots=True)
class WriteStamp:
    """What a conditional write left: the new version's content id and the store's own time of the write."""

    etag: str
    at: datetime


#: S3's answers to a conditional write whose condition did not hold: another version is there (412), none is
#: there for ``If-Match`` (404), or another conditional write to the key was in progress (409).
_CONDITION_FAILED = frozenset({"412", "PreconditionFailed", "404", "NoSuchKey", "NotFound", "409",
                               "ConditionalRequestConflict"})


def make_s3_client(max_pool_connections: int = 64, session: boto3.Session | None = None) -> S3Client:
    """A boto3 S3 client from ``session`` (an ``AwsCredentials`` block's), else from the default credential chain.

    boto3 reads ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3`` itself; a loopback endpoint gets path-style
    addressing because virtual-host names do not resolve there.
    """
    # Imported here, not at the top: boto3 and botocore's config cost ~0.3 s of start-up, which a command that
    # reads only local files (``kyc-attach validate`` on a local manifest) never needs to pay.
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    loopback = any(h in endpoint for h in ("127.0.0.1", "localhost", "[::1]"))
    config = Config(
        max_pool_connections=max_pool_connections,
        # Standard, not adaptive: adaptive's client-side limiter, once throttled, holds every S3 call of the process
        # to as little as half a request a second; a ledger store answering SlowDown delayed a run's stop by
        # minutes. The run's S3 rates follow the Fin API's (hundreds a second), far under S3's per-prefix limits.
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path"} if loopback else {},
    )
    client = (session or boto3).client("s3", config=config)
    return cast("S3Client", client)


def _raise_missing(exc: ClientError) -> None:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in ("412", "PreconditionFailed"):
        # Only reads with If-Match get this: the object was replaced after its first read. Retrying cannot help
        # (the upload must not mix two versions), and the new version is for the next run.
        raise ObjectChanged("the object was replaced while it was being read") from None
    if code in ("404", "NoSuchKey", "NotFound"):
        raise ObjectMissing("no object at this location") from None
    if code in ("403", "AccessDenied"):
        raise ObjectMissing("access to the object was denied") from None


def _info(meta: Mapping[str, Any]) -> ObjectInfo:
    sha256 = full_object_checksum(meta, "ChecksumSHA256")
    return ObjectInfo(
        size=int(meta["ContentLength"]),
        etag=str(meta.get("ETag", "")).strip('"'),
        content_type=meta.get("ContentType"),
        modified=meta.get("LastModified"),
        sha256=_hex(sha256) if sha256 else None,
        crc64nvme=full_object_checksum(meta, "ChecksumCRC64NVME"),
    )


def _hex(sha256: str) -> str | None:
    raw = base64.b64decode(sha256)
    return raw.hex() if len(raw) == 32 else None


def full_object_checksum(meta: Mapping[str, Any], field: str) -> str | None:
    """A checksum of the whole object from a HEAD's answer, or None.

    ``ChecksumType`` says FULL_OBJECT or COMPOSITE on AWS; servers that leave it out (moto) mark a composite
    checksum, the checksum of the parts' checksums, by its ``-<parts>`` suffix, which a full one never has.
    """
    value = meta.get(field)
    if not isinstance(value, str) or not value or meta.get("ChecksumType") == "COMPOSITE":
        return None
    _, dash, parts = value.rpartition("-")
    if dash and parts.isdigit():
        return None
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return value


class _Owner(TypedDict, total=False):
    ExpectedBucketOwner: str


class _Encryption(TypedDict, total=False):
    ServerSideEncryption: Literal["AES256", "aws:kms"]
    SSEKMSKeyId: str


class _ReadOptions(TypedDict, total=False):
    IfMatch: str
    Range: str


class _NoOverwrite(TypedDict, total=False):
    IfNoneMatch: str


class _Condition(TypedDict, total=False):
    IfMatch: str
    IfNoneMatch: str


def _read_options(etag: str | None, byte_range: str | None) -> _ReadOptions:
    options: _ReadOptions = {"IfMatch": etag} if etag else {}
    if byte_range is not None:
        options["Range"] = f"bytes={byte_range}"
    return options


class S3Store:
    """Reads and writes S3 objects with the project's write policy (encryption, owner, no overwrite).

    Every request carries the expected bucket owner when one is configured: a bucket name taken over by another
    account is refused by S3 instead of read from or written to.
    """

    def __init__(
        self,
        client: S3Client,
        *,
        sse: str = "AES256",
        kms_key_id: str | None = None,
        expected_bucket_owner: str | None = None,
    ) -> None:
        self.client = client
        self._owner: _Owner = {"ExpectedBucketOwner": expected_bucket_owner} if expected_bucket_owner else {}
        if sse == "AES256":
            self._sse: _Encryption = {"ServerSideEncryption": "AES256"}
        elif sse == "aws:kms":
            self._sse = {"ServerSideEncryption": "aws:kms"}
            if kms_key_id:
                self._sse["SSEKMSKeyId"] = kms_key_id
        else:  # never silently unencrypted: "" or a typo is refused, not skipped
            raise SetupError("S3 server-side encryption must be AES256 or aws:kms")

    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Size and ETag of an object; ``ObjectMissing`` when it is not there (or access is denied)."""
        try:
            # checksum mode: S3 answers with the object's stored checksums (a file identity that survives copies)
            meta = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **self._owner)
        except ClientError as exc:
            _raise_missing(exc)
            raise
        return _info(meta)

    def _get_object(self, bucket: str, key: str, *, etag: str | None = None,
                    byte_range: str | None = None) -> GetObjectOutputTypeDef:
        """The one GET of the reads below: owner-checked, and S3's refusals as the neutral errors."""
        try:
            return self.client.get_object(Bucket=bucket, Key=key, **self._owner, **_read_options(etag, byte_range))
        except ClientError as exc:
            _raise_missing(exc)
            raise

    def get(self, bucket: str, key: str) -> tuple[ObjectInfo, BinaryIO]:
        """Size, ETag and a streaming body in one request (a GET's response carries what a HEAD tells)."""
        resp = self._get_object(bucket, key)
        body = cast(BinaryIO, resp["Body"])  # a StreamingBody reads like a binary file
        return _info(resp), body

    def open(self, bucket: str, key: str, *, etag: str | None = None) -> BinaryIO:
        """A streaming body of the object; with ``etag``, ``ObjectChanged`` if it changed since the HEAD."""
        return cast(BinaryIO, self._get_object(bucket, key, etag=etag)["Body"])  # reads like a binary file

    def read_range(self, bucket: str, key: str, byte_range: str, *, etag: str | None = None) -> bytes:
        """Some bytes of an object (``byte_range`` as in HTTP: ``0-261``, ``-2048`` for the last 2048); with
        ``etag``, ``ObjectChanged`` if the object changed since it was first seen."""
        return self._get_object(bucket, key, etag=etag, byte_range=byte_range)["Body"].read()

    def download(self, bucket: str, key: str, dest: Path) -> None:
        """Copy an object to a local file, streamed (never whole in memory)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        extra: dict[str, Any] | None = dict(self._owner) or None
        self.client.download_file(bucket, key, str(dest), ExtraArgs=extra)

    def put(self, bucket: str, key: str, data: bytes | BinaryIO, *, content_type: str, overwrite: bool) -> None:
        """Write an object, encrypted; with ``overwrite=False`` an existing object is never replaced."""
        extra: _NoOverwrite = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=bucket, Key=key, Body=data, ContentType=content_type, **self._sse, **self._owner, **extra
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                raise SetupError(f"s3://{bucket}/{key} exists already and is never overwritten") from None
            raise

    def lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules (none configured: an empty list); S3's refusal as ``ClientError``."""
        try:
            answer = self.client.get_bucket_lifecycle_configuration(Bucket=bucket, **self._owner)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return []
            raise
        return [dict(rule) for rule in answer.get("Rules", [])]
    def put_if(self, bucket: str, key: str, data: bytes, *, content_type: str, etag: str | None) -> WriteStamp | None:
        """Write an object only if no object is there (``etag`` None: ``If-None-Match: *``) or only if it is still
        the version ``etag`` (``If-Match``); ``None`` when the condition did not hold. The time is the ``Date``
        of S3's answer: the store's clock, whatever this machine's says."""
        condition: _Condition = {"IfMatch": f'"{etag}"'} if etag is not None else {"IfNoneMatch": "*"}
        try:
            resp = self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type,
                                          **self._sse, **self._owner, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in _CONDITION_FAILED:
                return None
            raise
        return WriteStamp(str(resp["ETag"]).strip('"'), parsedate_to_datetime(
            resp["ResponseMetadata"]["HTTPHeaders"]["date"]))

    def delete_if(self, bucket: str, key: str, etag: str) -> bool:
        """Delete an object only if it is still the version ``etag``; whether it was deleted."""
        try:
            self.client.delete_object(Bucket=bucket, Key=key, IfMatch=f'"{etag}"', **self._owner)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in _CONDITION_FAILED:
                return False
            raise
        return True

    def exists(self, bucket: str, key: str) -> bool:
        """Whether an object is at this key."""
        try:
            self.client.head_object(Bucket=bucket, Key=key, **self._owner)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, bucket: str, key: str) -> None:
        """Delete one object (absent already is fine)."""
        self.client.delete_object(Bucket=bucket, Key=key, **self._owner)

    def list_keys(self, bucket: str, prefix: str) -> Iterator[tuple[str, ObjectInfo]]:
        """Every object under a prefix with its size, ETag and time of last change, in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **self._owner):
            for obj in page.get("Contents", []):
                etag = str(obj.get("ETag", "")).strip('"')
                yield obj["Key"], ObjectInfo(int(obj["Size"]), etag, None, obj.get("LastModified"))

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under a prefix (1,000 keys a request); the number deleted."""
        keys = [k for k, _ in self.list_keys(bucket, prefix)]
        for start in range(0, len(keys), 1000):
            chunk: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[start:start + 1000]]
            resp = self.client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True}, **self._owner)
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise RuntimeError(f"s3://{bucket}/{prefix}: {len(resp['Errors'])} object(s) not deleted "
                                   f"({first.get('Code')})")
        return len(keys)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """A small object whole (ledger segments, summaries)."""
        return self.client.get_object(Bucket=bucket, Key=key, **self._owner)["Body"].read()
