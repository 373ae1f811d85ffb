"""One way to read and write small objects, whether a location is on S3 or on local disk.

Reports, ledger segments and run state go through here, so a local run and an S3 run share one code
path and one write policy (S3 writes are encrypted and, unless asked, never overwrite).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from connectors.errors import SetupError
from connectors.s3 import Location, S3Store


class ObjectStore:
    """Reads, writes and lists objects at ``Location``s; local paths need no S3 client."""

    def __init__(self, s3: S3Store | None) -> None:
        self.s3 = s3

    def _s3(self) -> S3Store:
        if self.s3 is None:
            raise SetupError("an s3:// location was given but no S3 client is configured")
        return self.s3

    def write(self, loc: Location, data: bytes, *, content_type: str = "application/octet-stream",
              overwrite: bool = False) -> None:
        """Write ``data`` at ``loc``; an existing object is kept unless ``overwrite``."""
        if loc.is_s3:
            assert loc.bucket is not None
            self._s3().put(loc.bucket, loc.key, data, content_type=content_type, overwrite=overwrite)
            return
        path = Path(loc.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite and path.exists():
            raise SetupError(f"{path} exists already and is never overwritten")
        # Write then rename, so a crash never leaves half a file where a whole one is expected.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def write_file(self, loc: Location, source: Path, *, content_type: str, overwrite: bool = False) -> None:
        """Copy a local file to ``loc``, streamed."""
        if loc.is_s3:
            assert loc.bucket is not None
            with source.open("rb") as fh:
                self._s3().put(loc.bucket, loc.key, fh, content_type=content_type, overwrite=overwrite)
            return
        self.write(loc, source.read_bytes(), overwrite=overwrite)

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

    def delete(self, loc: Location) -> None:
        """Delete the object at ``loc`` (only the small state objects this project writes: a run's lease)."""
        if loc.is_s3:
            assert loc.bucket is not None
            self._s3().delete(loc.bucket, loc.key)
            return
        Path(loc.key).unlink(missing_ok=True)

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
