"""The example legacy archives of tests/fixtures/legacy staged on S3 with their mappings and files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from connectors.objects import ObjectStore
from connectors.s3 import Location, S3Store, make_s3_client
from flows.commands.demo_samples import sample_jpeg, sample_pdf, sample_png

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / "tests" / "fixtures" / "legacy"


def sample_for(key: str) -> bytes:
    """A small real file of the type the key's extension says."""
    if key.endswith(".jpg"):
        return sample_jpeg(comment=key.encode())  # unique content per file, inside the JPEG
    if key.endswith(".png"):
        return sample_png(rgb=tuple(hashlib.sha256(key.encode()).digest()[:3]))  # type: ignore[arg-type]
    return sample_pdf(key)


ARCHIVES = {  # name: (its bucket, encoding, delimiter, columns holding file keys)
    "bank_a": ("legacy-bank-a", "utf-8", ",", ("SCAN_URI",)),
    "broker_b": ("legacy-broker-b", "utf-8", ",", ("File Path",)),
    "carrier_c": ("legacy-carrier-c", "cp1252", ";", ("Bild Vorderseite", "Bild Rückseite")),
}


def stage_archive(name: str, bucket: str) -> tuple[str, str, dict[str, Any], list[dict[str, Any]]]:
    """Put an example archive, its mapping and its files on S3 (the archive's bucket renamed to ``bucket``).

    Returns (archive uri, mapping uri, world, archive rows after renaming).
    """
    import csv
    import io

    source_bucket, encoding, delimiter, file_columns = ARCHIVES[name]
    archive = (LEGACY / name / "archive.csv").read_bytes().decode(encoding)
    archive = archive.replace(f"s3://{source_bucket}/", f"s3://{bucket}/")
    mapping = (ROOT / "mappings" / f"{name}.yaml").read_text().replace(f"s3://{source_bucket}/", f"s3://{bucket}/")
    world = json.loads((LEGACY / name / "world.json").read_text())
    rows = list(csv.DictReader(io.StringIO(archive), delimiter=delimiter))
    store = ObjectStore(S3Store(make_s3_client()))
    for row in rows:
        for column in file_columns:
            value = row[column]
            if not value:
                continue
            key = value.split("/", 3)[3] if value.startswith("s3://") else value
            store.write(Location(bucket, key), sample_for(key))
    store.write(Location(bucket, f"archives/{name}.csv"), archive.encode(encoding))
    store.write(Location(bucket, f"mappings/{name}.yaml"), mapping.encode())
    return f"s3://{bucket}/archives/{name}.csv", f"s3://{bucket}/mappings/{name}.yaml", world, rows
