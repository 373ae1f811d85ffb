"""The S3 work area of a fanned-out run: shard rows files go up for the shard runs, report parts come back.

Layout under ``<work_uri>/<run_id>/``: ``rows/<shard>.arrow`` (a shard's rows, from the plan),
``parts/<shard>.parquet`` (a shard's report part), ``results/<shard>.json`` (its counts and API statistics),
``payloads/<shard>.jsonl`` (a dry run's would-be payloads). Objects are overwritten: a shard run that is
retried writes its part again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.run_ids import checked_run_id
from connectors.s3 import Location

_CONTENT_TYPES = {".parquet": "application/vnd.apache.parquet", ".arrow": "application/vnd.apache.arrow.file"}
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
        # The run's folder is emptied at the end: a run id that is not one plain segment could name another's.
        return cls(store, Location.parse(work_uri).child(checked_run_id(run_id)))

    def part(self, shard: str) -> Location:
        return self.prefix.child("parts", f"{shard}.parquet")

    def result(self, shard: str) -> Location:
        return self.prefix.child("results", f"{shard}.json")

    def payloads(self, shard: str) -> Location:
        return self.prefix.child("payloads", f"{shard}.jsonl")

    def remove_shard_rows(self) -> int:
        """Delete the shards' rows files (the manifest's rows: personal data); the number deleted.

        Parts and results stay: they hold what the report holds, and a parent retried with the same run id
        reads them again for the shard runs that finished.
        """
        if not self.prefix.key.strip("/"):  # never a prefix that is a whole bucket
            raise SetupError("work area: refusing to delete under the root of a bucket")
        return self.store.delete_prefix(self.prefix.child("rows"))

    def upload_shard_rows(self, files: dict[str, Path]) -> dict[str, str]:
        """Copy each shard's local rows file up; the s3:// uri by shard."""
        pairs = {shard: (path, self.prefix.child("rows", f"{shard}.arrow")) for shard, path in files.items()}
        upload_files(self.store, list(pairs.values()))
        return {shard: str(loc) for shard, (_, loc) in pairs.items()}


def upload_files(store: ObjectStore, pairs: list[tuple[Path, Location]]) -> None:
    """Local files to S3, a few at a time."""
    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="work-up") as pool:
        list(pool.map(lambda p: store.write_file(p[1], p[0], content_type=_content_type(p[0]), overwrite=True), pairs))


def _content_type(path: Path) -> str:
    return _CONTENT_TYPES.get(path.suffix, "application/octet-stream")


def download_files(store: ObjectStore, pairs: list[tuple[Location, Path]]) -> list[Path]:
    """S3 objects to local files, a few at a time; the local paths, in order."""

    def one(pair: tuple[Location, Path]) -> Path:
        loc, dest = pair
        store.download(loc, dest)
        return dest

    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="work-down") as pool:
        return list(pool.map(one, pairs))
