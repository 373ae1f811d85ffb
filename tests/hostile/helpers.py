"""The hostile-input corpus: where it lives and how to turn it into S3 objects and a manifest."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.commands.demo_samples import sample_jpeg, sample_pdf, sample_png

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
WHOLE_FILE = CORPUS / "whole_file"
MAX_FILE_BYTES = 4096  # the run's size cap in the corpus run; every good sample file is far below it

# First bytes of a GIF: a real image format, but not one the API accepts.
GIF = b"GIF89a\x10\x00\x10\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00"
# The start of a Windows executable and of a ZIP archive: what a polyglot file carries after a real document.
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00" + b"\x90" * 200
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 20 + b"payload.exe" + EXE


def world() -> dict[str, Any]:
    """The sandbox world of the corpus (three customers, five parties)."""
    data: dict[str, Any] = json.loads((CORPUS / "world.json").read_text())
    return data


def corpus_rows(bucket: str) -> list[dict[str, str]]:
    """The corpus rows (with their ``case``/``expect_*`` columns), ``${BUCKET}`` filled in."""
    text = (CORPUS / "rows.csv").read_text(encoding="utf-8").replace("${BUCKET}", bucket)
    return list(csv.DictReader(io.StringIO(text, newline="")))


def manifest_bytes(bucket: str) -> bytes:
    """The corpus manifest as the run reads it: the file itself, bucket filled in, extra columns and all."""
    return (CORPUS / "rows.csv").read_bytes().replace(b"${BUCKET}", bucket.encode())


def content_for(row: dict[str, str]) -> bytes | None:
    """What the object behind a corpus row holds (None: no object at all)."""
    kind = row["content"] or row["s3_uri"].rsplit(".", 1)[-1]
    key = row["s3_uri"]
    return {
        "none": None,
        "empty": b"",
        "big": sample_pdf("big", pad_to=MAX_FILE_BYTES + 1),
        "text": b"Scanned by the legacy system; the image is elsewhere.\n" * 20,
        "gif": GIF + b"\x00" * 200,
        "pdf": sample_pdf(key[-40:]),
        "jpg": sample_jpeg(),
        "png": sample_png(),
        # Right signature, wrong structure: each must be refused before upload (bad_file_structure).
        "pdf_zip": sample_pdf(key[-40:]) + ZIP,
        "png_exe": b"\x89PNG\r\n\x1a\n" + EXE,
        "tiny_pdf": b"%PDF-",
        "jpeg_text": b"\xff\xd8\xff" + b"this is not an image, only text after a JPEG signature\n" * 4,
    }[kind]


def corpus_files(rows: list[dict[str, str]], bucket: str) -> dict[str, bytes]:
    """Objects to create in ``bucket`` for the corpus rows that point into it with a usable key."""
    files: dict[str, bytes] = {}
    prefix = f"s3://{bucket}/"
    for row in rows:
        uri = row["s3_uri"]
        if not uri.startswith(prefix) or any(ord(c) < 32 for c in uri) or "/../" in uri or uri == prefix:
            continue
        data = content_for(row)
        if data is not None:
            files[uri[len(prefix):]] = data
    return files


@dataclass
class CorpusRun:
    """What the corpus runs produced, for the tests to read."""

    bucket: str
    rows: list[dict[str, str]] = field(repr=False)
    real: dict[str, Any] = field(repr=False)
    dry: dict[str, Any] = field(repr=False)
    record: dict[str, Any] = field(repr=False)  # the sandbox's record right after the real run
    log_path: Path = field(repr=False)
    work_dir: Path = field(repr=False)
    # Never in a repr: a failing assertion prints its arguments into the CI log.
    tokens: list[str] = field(default_factory=list, repr=False)  # every access/refresh token the runs held
    secret: str = field(default="", repr=False)
