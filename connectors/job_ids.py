"""What a job is: one manifest's place and content, hashed into the id that keys its ledger and its marker.

The manifest reader, the inbox listing and the migration all name jobs by this one formula; none of them
needs to read a manifest for it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from connectors.s3 import Location


def job_id_of(location: str, content_id: str) -> str:
    """The one job-id formula: a manifest's canonical location (``Location.normalised``: ``m.csv``,
    ``./m.csv``, its absolute path and ``a//m.csv`` are one place) and its content id (S3 ETag or SHA-256)."""
    canonical = str(Location.parse(location).normalised())
    return hashlib.sha256(f"{canonical}\0{content_id}".encode()).hexdigest()[:20]


def sha256_of_file(path: Path) -> str:
    """SHA-256 of a local file, read in blocks (never whole in memory): a local manifest's content id."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
