"""The one storage interface: objects at ``Location``s, whether on S3 or on local disk.

Reports, ledger segments, run state, manifests in an inbox and a fanned-out run's work files go through here, so
a local run and an S3 run share one code path and one write policy (S3 writes are encrypted, every S3 request
carries the expected bucket owner, and nothing is overwritten unless asked). Only :mod:`connectors.s3` talks to
boto3; callers never reach through to it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from connectors.errors import ObjectMissing, SetupError
from connectors.s3 import Location, ObjectInfo, S3Store, WriteStamp


class ObjectStore:
    """Reads, writes and lists objects at ``Location``s; local paths need no S3 client.

    ``s3`` serves reports, the ledger and work files; ``documents`` and ``manifest``, when given, serve those
    roles (their own AWS credentials), reached through :meth:`documents` and :meth:`manifests`."""

    def __init__(self, s3: S3Store | None, *, documents: S3Store | None = None,
                 manifest: S3Store | None = None) -> None:
        self._s3_store = s3
        self._documents = documents
        self._manifest = manifest

    def documents(self) -> ObjectStore:
        """The store that reads source documents."""
        return self if self._documents is None else ObjectStore(self._documents)

    def manifests(self) -> ObjectStore:
        """The store that reads manifests."""
        return self if self._manifest is None else ObjectStore(self._manifest)

    def _s3(self) -> S3Store:
        if self._s3_store is None:
            raise SetupError("an s3:// location was given but no S3 client is configured")
        return self._s3_store

    def _s3_object(self, loc: Location) -> tuple[S3Store, str, str]:
        """The S3 adapter, bucket and key of an object only S3 holds (source documents); ``SetupError`` for a
        local path, which the reads below have no use for."""
        if loc.bucket is None:
            raise SetupError("this read is only for s3:// objects")
        return self._s3(), loc.bucket, loc.key

    def write(self, loc: Location, data: bytes, *, content_type: str = "application/octet-stream",
              overwrite: bool = False) -> None:
        """Write ``data`` at ``loc``; an existing object is kept unless ``overwrite``."""
        if loc.is_s3:
            assert loc.bucket is not None
            self._s3().put(loc.bucket, loc.key, data, content_type=content_type, overwrite=overwrite)
            return
        _write_local(Path(loc.key), lambda fh: fh.write(data), overwrite=overwrite)

    def write_file(self, loc: Location, source: Path, *, content_type: str, overwrite: bool = False) -> None:
        """Copy a local file to ``loc``, streamed (never whole in memory)."""
        with source.open("rb") as src:
            if loc.is_s3:
                assert loc.bucket is not None
                self._s3().put(loc.bucket, loc.key, src, content_type=content_type, overwrite=overwrite)
                return
            _write_local(Path(loc.key), lambda fh: shutil.copyfileobj(src, fh), overwrite=overwrite)

    def read(self, loc: Location) -> bytes:
        """The whole object (only for small ones)."""
        if loc.is_s3:
            assert loc.bucket is not None
            return self._s3().get_bytes(loc.bucket, loc.key)
        return Path(loc.key).read_bytes()

    def exists(self, loc: Location) -> bool:
        """Whether an object is at ``loc``."""
        if loc.is_s3:
            assert loc.bucket is not None
            return self._s3().exists(loc.bucket, loc.key)
        return Path(loc.key).exists()

    def lifecycle_rules(self, loc: Location) -> list[dict[str, Any]]:
        """The lifecycle rules of an ``s3://`` location's bucket; a local folder has none."""
        if not loc.is_s3:
            return []
        assert loc.bucket is not None
        return self._s3().lifecycle_rules(loc.bucket)

    def delete(self, loc: Location) -> None:
        """Delete the object at ``loc`` (only the small state objects this project writes: a run's lease)."""
        if loc.is_s3:
            assert loc.bucket is not None
            self._s3().delete(loc.bucket, loc.key)
            return
        Path(loc.key).unlink(missing_ok=True)

    def write_if(self, loc: Location, data: bytes, *, etag: str | None,
                 content_type: str = "application/json") -> WriteStamp | None:
        """Compare-and-swap of a small state object: write ``data`` only if nothing is at ``loc`` (``etag`` None)
        or only if the object there is still the version ``etag``; ``None`` when that did not hold. The stamp's
        time is the store's own (S3's ``Date``; a local file's modification time, set by the kernel).

        Locally, a lock file beside the object makes the check and the write one step, for every process of
        the machine whatever its PID namespace; the content id is the SHA-256 of the bytes."""
        if loc.is_s3:
            assert loc.bucket is not None
            return self._s3().put_if(loc.bucket, loc.key, data, content_type=content_type, etag=etag)
        path = Path(loc.key)
        with _locked(path):
            if _local_etag(path) != etag:
                return None
            _write_local(path, lambda fh: fh.write(data), overwrite=True)
            return WriteStamp(hashlib.sha256(data).hexdigest(), _modified(path))

    def read_if_present(self, loc: Location) -> tuple[bytes, str] | None:
        """A small state object and its content id (as ``write_if`` takes it), or ``None`` when absent."""
        if loc.is_s3:
            try:
                info, body = self.get(loc)
            except ObjectMissing:
                return None
            with body:
                return body.read(), info.etag
        try:
            data = Path(loc.key).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def delete_if(self, loc: Location, etag: str) -> bool:
        """Delete a small state object only if it is still the version ``etag``; whether it was deleted."""
        if loc.is_s3:
            assert loc.bucket is not None
            return self._s3().delete_if(loc.bucket, loc.key, etag)
        path = Path(loc.key)
        with _locked(path):
            if _local_etag(path) != etag:
                return False
            path.unlink()
            return True

    def head(self, loc: Location) -> ObjectInfo:
        """Size, content id and time of last change of one object; ``ObjectMissing`` when it is not there.

        The content id is the ETag on S3 and empty for a local file (its bytes are its identity there).
        """
        if loc.is_s3:
            assert loc.bucket is not None
            return self._s3().head(loc.bucket, loc.key)
        stat = Path(loc.key).stat()
        return ObjectInfo(stat.st_size, "", None, datetime.fromtimestamp(stat.st_mtime, UTC))

    def get(self, loc: Location) -> tuple[ObjectInfo, BinaryIO]:
        """Size, content id and a streaming body of an S3 object in one request; ``ObjectMissing`` when absent."""
        s3, bucket, key = self._s3_object(loc)
        return s3.get(bucket, key)

    def open(self, loc: Location, *, etag: str | None = None) -> BinaryIO:
        """A streaming body of an S3 object; with ``etag``, ``ObjectChanged`` if it changed since it was seen."""
        s3, bucket, key = self._s3_object(loc)
        return s3.open(bucket, key, etag=etag)

    def read_range(self, loc: Location, byte_range: str, *, etag: str | None = None) -> bytes:
        """Some bytes of an S3 object (``byte_range`` as in HTTP: ``0-261``, ``-2048``); with ``etag``,
        ``ObjectChanged`` if it changed since it was seen."""
        s3, bucket, key = self._s3_object(loc)
        return s3.read_range(bucket, key, byte_range, etag=etag)

    def list_under(self, prefix: Location) -> Iterator[tuple[Location, ObjectInfo]]:
        """On S3, every object whose key starts with ``prefix``'s key (a name prefix, not only a folder), with
        what a listing tells of it, in key order; for a local path, the files under the folder (as ``list``)."""
        if prefix.is_s3:
            assert prefix.bucket is not None
            for key, info in self._s3().list_keys(prefix.bucket, prefix.key):
                yield Location(prefix.bucket, key), info
            return
        for loc in self.list(prefix):
            yield loc, self.head(loc)

    def delete_prefix(self, prefix: Location) -> int:
        """Delete every object under an ``s3://`` folder (the work files of a run); the number deleted."""
        if not prefix.is_s3:
            raise SetupError("delete_prefix: only for s3:// locations")
        assert prefix.bucket is not None
        return self._s3().delete_prefix(prefix.bucket, prefix.key.rstrip("/") + "/")

    def download(self, loc: Location, dest: Path) -> None:
        """Copy the object at ``loc`` to a local file, streamed."""
        if loc.is_s3:
            assert loc.bucket is not None
            self._s3().download(loc.bucket, loc.key, dest)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(loc.key, dest)

    def list(self, prefix: Location) -> list[Location]:
        """Objects under a prefix (a folder for local paths), in name order."""
        if prefix.is_s3:
            assert prefix.bucket is not None
            key = prefix.key.rstrip("/") + "/"
            return [Location(prefix.bucket, k) for k, _ in self._s3().list_keys(prefix.bucket, key)]
        root = Path(prefix.key)
        if not root.is_dir():
            return []
        return [Location(None, str(p)) for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``path`` (a hidden file: listings skip it) for one compare-and-swap."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _local_etag(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime_ns / 1e9, UTC)


def _write_local(path: Path, write: Callable[[BinaryIO], object], *, overwrite: bool) -> None:
    """Write a local file through ``write`` into a temporary file, then rename it into place: a crash never
    leaves half a file where a whole one is expected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise SetupError(f"{path} exists already and is never overwritten")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
