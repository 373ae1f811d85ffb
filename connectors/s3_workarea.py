"""The S3 work area of a fanned-out run: bucket files go up for the shard runs, report parts come back.

Layout under ``<work_uri>/<run_id>/``: ``buckets/<shard>/<n>-<file>`` (the plan's bucket files),
``parts/<shard>.parquet`` (a shard's report part), ``results/<shard>.json`` (its counts and API statistics),
``payloads/<shard>.jsonl`` (a dry run's would-be payloads). Objects are overwritten: a shard run that is
retried writes its part again.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import Location

PARQUET = "application/vnd.apache.parquet"
_THREADS = 16


class S3WorkArea:
    """One run's folder on S3, shared by the parent flow run and its shard runs."""

    def __init__(self, store: ObjectStore, prefix: Location) -> None:
        if not prefix.is_s3:
            raise SetupError("work area: KYC_ATTACH_WORK_URI must be an s3:// location")
        self.store = store
        self.prefix = prefix

    @classmethod
    def for_run(cls, store: ObjectStore, work_uri: str | None, run_id: str) -> S3WorkArea:
        if not work_uri:
            raise SetupError("fan-out needs KYC_ATTACH_WORK_URI (s3://bucket/prefix) for the shards' files")
        return cls(store, Location.parse(work_uri).child(run_id))

    def part(self, shard: str) -> Location:
        return self.prefix.child("parts", f"{shard}.parquet")

    def result(self, shard: str) -> Location:
        return self.prefix.child("results", f"{shard}.json")

    def payloads(self, shard: str) -> Location:
        return self.prefix.child("payloads", f"{shard}.jsonl")

    def upload_buckets(self, shard: str, files: Iterable[str]) -> list[str]:
        """Copy a shard's local bucket files up; their s3:// uris, in the same order."""
        pairs = [(Path(f), self.prefix.child("buckets", shard, f"{n:04d}-{Path(f).name}")) for n, f in enumerate(files)]
        upload_files(self.store, pairs)
        return [str(loc) for _, loc in pairs]


def upload_files(store: ObjectStore, pairs: list[tuple[Path, Location]]) -> None:
    """Local files to S3, a few at a time."""
    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="work-up") as pool:
        list(pool.map(lambda p: store.write_file(p[1], p[0], content_type=PARQUET, overwrite=True), pairs))


def download_files(store: ObjectStore, pairs: list[tuple[Location, Path]]) -> list[Path]:
    """S3 objects to local files, a few at a time; the local paths, in order."""
    s3 = store.s3
    if s3 is None:
        raise SetupError("work area: no S3 client is configured")

    def one(pair: tuple[Location, Path]) -> Path:
        loc, dest = pair
        assert loc.bucket is not None
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3.download(loc.bucket, loc.key, dest)
        return dest

    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="work-down") as pool:
        return list(pool.map(one, pairs))
